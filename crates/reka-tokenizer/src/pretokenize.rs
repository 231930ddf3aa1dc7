//! Pre-tokenisation: splitting text into the pieces that BPE works on, as the
//! regular expressions of llama.cpp / Hugging Face do, but written as a
//! hand-made scanner (the patterns need look-ahead, and a scanner is faster).
//!
//! * [`PreTokenizer::Gpt2`]:
//!   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! * [`PreTokenizer::SmolLm`]: every `\p{N}` character is first cut out as a
//!   piece of its own, then the GPT-2 pattern runs on each remaining stretch.
//! * [`PreTokenizer::Llama3`]:
//!   `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
//!
//! Alternatives are tried left to right at each position (leftmost-first
//! semantics); since together they match every character, the pieces cover
//! the text without gaps. `\s` is the Unicode White_Space property, `\p{L}`
//! the general categories L*, `\p{N}` the categories N*.

use std::ops::Range;

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// Which splitting rules to apply (from GGUF `tokenizer.ggml.pre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's pattern (also used for unknown `pre` values).
    Gpt2,
    /// SmolLM: digits are single pieces, then GPT-2's pattern.
    SmolLm,
    /// Llama 3 (`llama-bpe`) pattern.
    Llama3,
}

impl PreTokenizer {
    /// The rules for a GGUF `tokenizer.ggml.pre` value; unknown values get GPT-2's.
    pub fn from_gguf_name(pre: &str) -> Self {
        match pre {
            "smollm" => Self::SmolLm,
            // dbrx is cl100k_base, whose pattern is Llama 3's.
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" | "dbrx" => Self::Llama3,
            _ => Self::Gpt2,
        }
    }

    /// Splits `text` into pieces, given as byte ranges in order.
    pub fn split(self, text: &str) -> Vec<Range<usize>> {
        let cps = classify(text);
        let mut ends: Vec<usize> = Vec::with_capacity(cps.len() / 3 + 1);
        match self {
            Self::Gpt2 => scan(&cps, 0, cps.len(), gpt2_match, &mut ends),
            Self::Llama3 => scan(&cps, 0, cps.len(), llama3_match, &mut ends),
            Self::SmolLm => {
                let mut lo = 0;
                while lo < cps.len() {
                    if cps[lo].class == Class::Number {
                        ends.push(lo + 1);
                        lo += 1;
                        continue;
                    }
                    let mut hi = lo;
                    while hi < cps.len() && cps[hi].class != Class::Number {
                        hi += 1;
                    }
                    scan(&cps, lo, hi, gpt2_match, &mut ends);
                    lo = hi;
                }
            }
        }
        let byte_at = |i: usize| cps.get(i).map_or(text.len(), |c| c.start);
        let mut pieces = Vec::with_capacity(ends.len());
        let mut prev = 0;
        for end in ends {
            pieces.push(byte_at(prev)..byte_at(end));
            prev = end;
        }
        pieces
    }
}

/// Character class as the patterns see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `\p{L}`
    Letter,
    /// `\p{N}`
    Number,
    /// `\s`
    Space,
    /// anything else: `[^\s\p{L}\p{N}]`
    Other,
}

/// One character of the text with its byte offset and class.
#[derive(Debug, Clone, Copy)]
struct Cp {
    start: usize,
    ch: char,
    class: Class,
}

fn class_of(c: char) -> Class {
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Number
        } else if c.is_ascii_whitespace() || c == '\u{0B}' {
            Class::Space
        } else {
            Class::Other
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    match get_general_category(c) {
        Gc::UppercaseLetter
        | Gc::LowercaseLetter
        | Gc::TitlecaseLetter
        | Gc::ModifierLetter
        | Gc::OtherLetter => Class::Letter,
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

fn classify(text: &str) -> Vec<Cp> {
    text.char_indices()
        .map(|(start, ch)| Cp {
            start,
            ch,
            class: class_of(ch),
        })
        .collect()
}

/// A matcher: given the characters `cps[..hi]` and a start `pos < hi`,
/// returns the end (exclusive, `> pos`) of the piece that starts at `pos`.
type Matcher = fn(&[Cp], usize, usize) -> usize;

/// Runs `matcher` repeatedly over `cps[lo..hi]`, pushing piece ends.
fn scan(cps: &[Cp], lo: usize, hi: usize, matcher: Matcher, ends: &mut Vec<usize>) {
    let mut pos = lo;
    while pos < hi {
        let end = matcher(cps, pos, hi).clamp(pos + 1, hi);
        ends.push(end);
        pos = end;
    }
}

/// Class at `i` if inside the stretch.
fn class_at(cps: &[Cp], i: usize, hi: usize) -> Option<Class> {
    if i < hi {
        cps.get(i).map(|c| c.class)
    } else {
        None
    }
}

/// End of the run of `class` characters starting at `from`.
fn run_end(cps: &[Cp], from: usize, hi: usize, class: Class) -> usize {
    let mut i = from;
    while class_at(cps, i, hi) == Some(class) {
        i += 1;
    }
    i
}

/// Length of the English contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`,
/// `'d`) at `pos` (which holds an apostrophe), optionally case-insensitive.
fn contraction_len(cps: &[Cp], pos: usize, hi: usize, ignore_case: bool) -> Option<usize> {
    let at = |i: usize| -> Option<char> {
        let c = if i < hi { cps.get(i)?.ch } else { return None };
        Some(if ignore_case {
            c.to_lowercase().next().unwrap_or(c)
        } else {
            c
        })
    };
    let c1 = at(pos + 1)?;
    if matches!(c1, 's' | 't' | 'm' | 'd') {
        return Some(2);
    }
    let c2 = at(pos + 2)?;
    matches!((c1, c2), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(3)
}

/// `\s+(?!\S)|\s+` at `pos` (a whitespace character): a run of whitespace
/// followed by a non-space leaves its last character for the next piece.
fn whitespace_end(cps: &[Cp], pos: usize, hi: usize) -> usize {
    let end = run_end(cps, pos, hi, Class::Space);
    if end - pos > 1 && end < hi {
        end - 1
    } else {
        end
    }
}

/// One match of the GPT-2 pattern.
fn gpt2_match(cps: &[Cp], pos: usize, hi: usize) -> usize {
    let c = cps[pos].ch;
    if c == '\'' {
        if let Some(n) = contraction_len(cps, pos, hi, false) {
            return pos + n;
        }
    }
    // ` ?X+` for X in letters, numbers, others: an ASCII space may lead.
    let body = if c == ' ' { pos + 1 } else { pos };
    match class_at(cps, body, hi) {
        Some(class @ (Class::Letter | Class::Number | Class::Other)) => {
            run_end(cps, body, hi, class)
        }
        _ => whitespace_end(cps, pos, hi),
    }
}

/// One match of the Llama 3 pattern.
fn llama3_match(cps: &[Cp], pos: usize, hi: usize) -> usize {
    let c = cps[pos].ch;
    let class = cps[pos].class;
    if c == '\'' {
        if let Some(n) = contraction_len(cps, pos, hi, true) {
            return pos + n;
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if class == Class::Letter {
        return run_end(cps, pos, hi, Class::Letter);
    }
    if c != '\r'
        && c != '\n'
        && class != Class::Number
        && class_at(cps, pos + 1, hi) == Some(Class::Letter)
    {
        return run_end(cps, pos + 1, hi, Class::Letter);
    }
    // \p{N}{1,3}
    if class == Class::Number {
        return run_end(cps, pos, hi, Class::Number).min(pos + 3);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let body = if c == ' ' { pos + 1 } else { pos };
    if class_at(cps, body, hi) == Some(Class::Other) {
        let mut end = run_end(cps, body, hi, Class::Other);
        while end < hi && matches!(cps[end].ch, '\r' | '\n') {
            end += 1;
        }
        return end;
    }
    // \s*[\r\n]+ : up to the last line break of the whitespace run.
    let run = run_end(cps, pos, hi, Class::Space);
    if let Some(last_nl) = (pos..run).rev().find(|&i| matches!(cps[i].ch, '\r' | '\n')) {
        return last_nl + 1;
    }
    whitespace_end(cps, pos, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(kind: PreTokenizer, text: &str) -> Vec<&str> {
        kind.split(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn gpt2_words_and_spaces() {
        let g = PreTokenizer::Gpt2;
        assert_eq!(
            pieces(g, "Once upon a time"),
            ["Once", " upon", " a", " time"]
        );
        assert_eq!(pieces(g, "a  b"), ["a", " ", " b"]);
        assert_eq!(pieces(g, "a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces(g, "  leading"), [" ", " leading"]);
        assert_eq!(pieces(g, "trailing  "), ["trailing", "  "]);
        assert_eq!(pieces(g, "a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pieces(g, "\n\n\n"), ["\n\n\n"]);
        assert_eq!(pieces(g, "a\tb"), ["a", "\t", "b"]);
        assert_eq!(pieces(g, "a \tb"), ["a", " ", "\t", "b"]);
        assert_eq!(pieces(g, "a\t b"), ["a", "\t", " b"]);
        assert_eq!(pieces(g, "x  !!"), ["x", " ", " !!"]);
        assert_eq!(pieces(g, " "), [" "]);
        assert_eq!(pieces(g, ""), Vec::<&str>::new());
    }

    #[test]
    fn gpt2_contractions_and_punctuation() {
        let g = PreTokenizer::Gpt2;
        assert_eq!(pieces(g, "I'm"), ["I", "'m"]);
        assert_eq!(pieces(g, "they'll"), ["they", "'ll"]);
        assert_eq!(pieces(g, "IT'S"), ["IT", "'", "S"]);
        assert_eq!(pieces(g, "''s"), ["''", "s"]);
        assert_eq!(pieces(g, "Hi!!! ..."), ["Hi", "!!!", " ..."]);
        assert_eq!(pieces(g, "in 2024"), ["in", " 2024"]);
        assert_eq!(pieces(g, "3.14"), ["3", ".", "14"]);
        assert_eq!(pieces(g, "naïve café"), ["naïve", " café"]);
    }

    #[test]
    fn gpt2_unicode_whitespace() {
        let g = PreTokenizer::Gpt2;
        // NBSP is \s but not the optional ASCII space.
        assert_eq!(pieces(g, "a\u{A0}b"), ["a", "\u{A0}", "b"]);
        assert_eq!(pieces(g, "a\u{A0} b"), ["a", "\u{A0}", " b"]);
        assert_eq!(pieces(g, "a \u{3000}b"), ["a", " ", "\u{3000}", "b"]);
    }

    #[test]
    fn smollm_splits_digits() {
        let s = PreTokenizer::SmolLm;
        assert_eq!(pieces(s, "in 2024"), ["in", " ", "2", "0", "2", "4"]);
        assert_eq!(pieces(s, "in  12"), ["in", "  ", "1", "2"]);
        assert_eq!(pieces(s, "3.14"), ["3", ".", "1", "4"]);
        assert_eq!(pieces(s, "x²"), ["x", "²"]);
        assert_eq!(
            pieces(s, "Once upon a time"),
            ["Once", " upon", " a", " time"]
        );
    }

    #[test]
    fn llama3_rules() {
        let l = PreTokenizer::Llama3;
        assert_eq!(pieces(l, "IT'S"), ["IT", "'S"]);
        assert_eq!(pieces(l, "12345"), ["123", "45"]);
        assert_eq!(pieces(l, "in 2024"), ["in", " ", "202", "4"]);
        assert_eq!(pieces(l, "a\tb"), ["a", "\tb"]);
        assert_eq!(pieces(l, "(word"), ["(word"]);
        assert_eq!(pieces(l, "a.\n\nb"), ["a", ".\n\n", "b"]);
        assert_eq!(pieces(l, "a \n  b"), ["a", " \n", " ", " b"]);
        assert_eq!(pieces(l, "a\n\nb"), ["a", "\n\n", "b"]);
        assert_eq!(pieces(l, "  leading"), [" ", " leading"]);
        assert_eq!(pieces(l, "x  !!"), ["x", " ", " !!"]);
    }
}
