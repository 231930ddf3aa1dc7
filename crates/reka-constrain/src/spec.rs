//! What a request constrains its output to, and the llguidance grammar each
//! becomes. JSON is written as `json.dumps` writes it (`", "` and `": "`,
//! no other whitespace), so a small model cannot wander off into blank space.

use crate::vocab::Vocab;
use llguidance::api::TopLevelGrammar;
use serde_json::{json, Value};

/// One function a tool call may name, with its arguments' JSON schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub parameters: Value,
}

/// A request's constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// Any JSON object (`response_format: {type: json_object}`).
    JsonObject,
    /// A value valid under the JSON schema.
    JsonSchema(Value),
    /// Text the regular expression matches in whole.
    Regex(String),
    /// Exactly one of the strings.
    Choice(Vec<String>),
    /// A Lark grammar, llguidance's dialect (`%json`, special tokens as `<name>`).
    Lark(String),
    /// Hermes-style tool calls, `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`,
    /// one of `tools` each; several in a row when `parallel`.
    ToolCalls { tools: Vec<ToolSpec>, parallel: bool },
}

/// How JSON is written inside every constraint.
fn json_options() -> Value {
    json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "})
}

/// Closes every object schema that lists `properties` and says nothing of
/// others (`additionalProperties: false`), as vLLM's default backend
/// (xgrammar) does and OpenAI's strict mode requires: the schemas pydantic,
/// instructor and langchain send leave it out and mean "these keys", and a
/// small model given room invents keys until `max_tokens`. `allOf` branches
/// are left open (closing each would forbid the others' keys).
pub fn close_objects(schema: &mut Value) {
    let Some(o) = schema.as_object_mut() else { return };
    if o.contains_key("properties") && !o.contains_key("additionalProperties") && !o.contains_key("patternProperties") {
        o.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (k, v) in o.iter_mut() {
        match k.as_str() {
            "properties" | "$defs" | "definitions" | "patternProperties" => {
                if let Some(m) = v.as_object_mut() {
                    m.values_mut().for_each(close_objects);
                }
            }
            "items" | "additionalItems" | "additionalProperties" | "not" => close_objects(v),
            "prefixItems" | "anyOf" | "oneOf" => {
                if let Some(a) = v.as_array_mut() {
                    a.iter_mut().for_each(close_objects);
                }
            }
            _ => {}
        }
    }
}

/// `schema` with the JSON options (a boolean schema becomes an object one)
/// and its objects closed ([`close_objects`]).
fn with_options(schema: &Value) -> Result<Value, String> {
    let mut s = match schema {
        Value::Object(_) => schema.clone(),
        Value::Bool(true) => json!({}),
        Value::Bool(false) => return Err("the schema `false` allows nothing".into()),
        _ => return Err("a JSON schema must be an object".into()),
    };
    close_objects(&mut s);
    if let Some(o) = s.as_object_mut() {
        o.insert("x-guidance".into(), json_options());
    }
    Ok(s)
}

/// `s` as a regex that matches it literally.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~/\"".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as a Lark string literal.
fn lark_literal(s: &str) -> String {
    // JSON's escapes are a subset of what Lark strings take.
    serde_json::to_string(s).unwrap_or_default()
}

impl Spec {
    /// The grammar for `vocab` (tool-call tags are the special tokens where
    /// the vocabulary has them).
    pub(crate) fn grammar(&self, vocab: &Vocab) -> Result<TopLevelGrammar, String> {
        Ok(match self {
            Spec::JsonObject => TopLevelGrammar::from_json_schema(with_options(&json!({"type": "object"}))?),
            Spec::JsonSchema(s) => TopLevelGrammar::from_json_schema(with_options(s)?),
            Spec::Regex(r) => TopLevelGrammar::from_regex(r),
            Spec::Choice(c) if c.is_empty() => return Err("the list of choices is empty".into()),
            Spec::Choice(c) => TopLevelGrammar::from_regex(&c.iter().map(|s| regex_literal(s)).collect::<Vec<_>>().join("|")),
            Spec::Lark(g) => TopLevelGrammar::from_lark(g.clone()),
            Spec::ToolCalls { tools, parallel } => TopLevelGrammar::from_lark(tool_calls_lark(tools, *parallel, vocab)?),
        })
    }
}

/// The Lark grammar of tool calls.
fn tool_calls_lark(tools: &[ToolSpec], parallel: bool, vocab: &Vocab) -> Result<String, String> {
    if tools.is_empty() {
        return Err("no tools to call".into());
    }
    let tag = |name: &str| if vocab.has_special(name) { name.to_string() } else { lark_literal(name) };
    let (open, close) = (tag("<tool_call>"), tag("</tool_call>"));
    let mut g = String::new();
    g.push_str(if parallel { "start: call (\"\\n\" call)*\n" } else { "start: call\n" });
    let alts: Vec<String> = (0..tools.len()).map(|i| format!("fn{i}")).collect();
    g.push_str(&format!("call: {open} \"\\n\" ({}) \"\\n\" {close}\n", alts.join(" | ")));
    for (i, t) in tools.iter().enumerate() {
        let head = format!("{{\"name\": {}, \"arguments\": ", serde_json::to_string(&t.name).unwrap_or_default());
        let schema = with_options(&t.parameters).map_err(|e| format!("tool `{}`: {e}", t.name))?;
        g.push_str(&format!("fn{i}: {} args{i} \"}}\"\n", lark_literal(&head)));
        g.push_str(&format!("args{i}: %json {}\n", serde_json::to_string(&schema).unwrap_or_default()));
    }
    Ok(g)
}
