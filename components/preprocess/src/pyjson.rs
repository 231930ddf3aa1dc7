//! JSON written as Python's `json.dumps` writes it by default (and as
//! transformers' `tojson(ensure_ascii=True)` filter does): `", "` and `": "`
//! between items, keys in their given order, and every character outside
//! printable ASCII escaped as `\uXXXX` (astral ones as surrogate pairs).
//! Reka Edge's chat format embeds the request's tools in this form.

use serde_json::Value;
use std::fmt::Write;

/// `json.dumps(value)`.
pub fn dumps(value: &Value) -> String {
    dumps_with(value, true, None)
}

/// `json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)`.
pub fn dumps_with(value: &Value, ensure_ascii: bool, indent: Option<usize>) -> String {
    let mut out = String::new();
    write(value, &mut out, &Style { ascii: ensure_ascii, indent, level: 0 });
    out
}

/// How to write: ASCII only or not, the indent (Python then ends lines
/// after `,`), the nesting level.
struct Style {
    ascii: bool,
    indent: Option<usize>,
    level: usize,
}

impl Style {
    fn inner(&self) -> Style {
        Style { level: self.level + 1, ..*self }
    }

    /// Before an item: `", "`, or a newline and the indent.
    fn before(&self, first: bool, out: &mut String) {
        match self.indent {
            None if !first => out.push_str(", "),
            None => {}
            Some(n) => {
                if !first {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&" ".repeat(n * (self.level + 1)));
            }
        }
    }

    /// Before a non-empty container's closing bracket.
    fn close(&self, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * self.level));
        }
    }
}

fn write(value: &Value, out: &mut String, st: &Style) {
    let ascii = st.ascii;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(n, out),
        Value::String(s) => string(s, out, ascii),
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                st.before(i == 0, out);
                write(v, out, &st.inner());
            }
            if !a.is_empty() {
                st.close(out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, v)) in o.iter().enumerate() {
                st.before(i == 0, out);
                string(k, out, ascii);
                out.push_str(": ");
                write(v, out, &st.inner());
            }
            if !o.is_empty() {
                st.close(out);
            }
            out.push('}');
        }
    }
}

/// Integers as they are; floats as Python's `repr` writes them (`1.0`,
/// `1e+20`, `1e-07`).
fn number(n: &serde_json::Number, out: &mut String) {
    let Some(f) = n.as_f64().filter(|_| n.is_f64()) else {
        out.push_str(&n.to_string());
        return;
    };
    let s = format!("{f:?}"); // shortest round-trip digits, as Python's repr
    let (mantissa, exp) = match s.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (s.clone(), 0),
    };
    // Python switches to exponent form at 1e16 and below 1e-4.
    let digits_exp = if exp != 0 { exp } else { decimal_exponent(f) };
    if f != 0.0 && !(-4..16).contains(&digits_exp) {
        let m = mantissa.trim_end_matches(".0");
        let (m, e) = if exp == 0 { scientific(f) } else { (m.to_string(), exp) };
        let _ = write!(out, "{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    } else if exp != 0 {
        // Rust wrote an exponent Python would not: write it out in full.
        let _ = write!(out, "{}", plain(f));
    } else {
        out.push_str(&s);
    }
}

fn decimal_exponent(f: f64) -> i32 {
    if f == 0.0 {
        0
    } else {
        f.abs().log10().floor() as i32
    }
}

/// `f` as shortest mantissa and exponent (`1.5`, 20 for 1.5e20).
fn scientific(f: f64) -> (String, i32) {
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// `f` in positional notation with Python's shortest digits.
fn plain(f: f64) -> String {
    let (m, e) = scientific(f);
    let neg = m.starts_with('-');
    let digits: String = m.chars().filter(char::is_ascii_digit).collect();
    let point = 1 + e; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

fn string(s: &str, out: &mut String, ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ if !ascii && c >= ' ' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected strings from CPython 3.11's `json.dumps` of the same values.
    #[test]
    fn writes_as_python() {
        let v: Value = serde_json::from_str(r#"{"b": [1, 2.5, null, true], "a": "é😀\n\u007f<x>", "c": {}}"#).expect("json");
        assert_eq!(dumps(&v), r#"{"b": [1, 2.5, null, true], "a": "\u00e9\ud83d\ude00\n\u007f<x>", "c": {}}"#);
        let nested = json!({"a": [1, {"b": []}], "c": {}});
        assert_eq!(dumps_with(&nested, false, Some(2)), "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": {}\n}");
        assert_eq!(dumps_with(&json!("é"), false, None), "\"é\"");
        for (f, want) in [(1.0, "1.0"), (1e20, "1e+20"), (1e-7, "1e-07"), (0.0001, "0.0001"), (123456.789, "123456.789"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (-2.5e-5, "-2.5e-05")] {
            assert_eq!(dumps(&json!(f)), want, "{f}");
        }
    }
}
