//! What a request constrains the answer to: OpenAI's `response_format`
//! (`json_object`, `json_schema`), vLLM's `structured_outputs` and older
//! `guided_json` / `guided_regex` / `guided_choice` / `guided_grammar`, and
//! the tool choice. At most one of them per request.

use crate::error::ApiError;
use crate::reka::inference::types::Constraint;
use crate::tools::Tools;
use serde_json::{Map, Value};

/// A schema given as an object or as JSON text.
fn schema(v: &Value, param: &str) -> Result<String, ApiError> {
    match v {
        Value::Object(_) | Value::Bool(_) => Ok(v.to_string()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(_) | Value::Bool(_)) => Ok(s.clone()),
            _ => Err(ApiError::invalid(param, format!("`{param}` must be a JSON schema (an object)."))),
        },
        _ => Err(ApiError::invalid(param, format!("`{param}` must be a JSON schema (an object)."))),
    }
}

fn text(v: &Value, param: &str) -> Result<String, ApiError> {
    v.as_str().map(str::to_string).ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be a string.")))
}

fn choices(v: &Value, param: &str) -> Result<Vec<String>, ApiError> {
    let list = v.as_array().filter(|a| !a.is_empty());
    list.and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be a non-empty list of strings.")))
}

/// `response_format`.
fn response_format(v: &Value) -> Result<Option<Constraint>, ApiError> {
    const P: &str = "response_format";
    let kind = v.get("type").and_then(Value::as_str);
    match kind {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Constraint::JsonObject)),
        Some("json_schema") => {
            let js = v.get("json_schema").filter(|j| j.is_object()).ok_or_else(|| ApiError::invalid(P, "`response_format.json_schema` must be an object with a `schema`."))?;
            match js.get("schema") {
                // OpenAI's examples leave the schema out for "any JSON".
                None | Some(Value::Null) => Ok(Some(Constraint::JsonObject)),
                Some(s) => Ok(Some(Constraint::JsonSchema(schema(s, "response_format.json_schema.schema")?))),
            }
        }
        _ => Err(ApiError::invalid(P, "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\".")),
    }
}

/// The constraints a request names, by field.
fn named(o: &Map<String, Value>) -> Result<Vec<(&'static str, Constraint)>, ApiError> {
    let mut out = Vec::new();
    let get = |k: &str| o.get(k).filter(|v| !v.is_null());
    if let Some(v) = get("response_format") {
        if let Some(c) = response_format(v)? {
            out.push(("response_format", c));
        }
    }
    // vLLM's current form, and its older top-level fields.
    let so = get("structured_outputs").or(get("guided_decoding"));
    let field = |k: &str| -> Option<(String, &Value)> {
        match so.and_then(|s| s.get(k)).filter(|v| !v.is_null()) {
            Some(v) => Some((format!("structured_outputs.{k}"), v)),
            None => get(&format!("guided_{k}")).map(|v| (format!("guided_{k}"), v)),
        }
    };
    if let Some((p, v)) = field("json") {
        out.push(("guided_json", Constraint::JsonSchema(schema(v, &p)?)));
    }
    if let Some((p, v)) = field("regex") {
        out.push(("guided_regex", Constraint::Regex(text(v, &p)?)));
    }
    if let Some((p, v)) = field("choice") {
        out.push(("guided_choice", Constraint::Choice(choices(v, &p)?)));
    }
    if let Some((p, v)) = field("grammar") {
        out.push(("guided_grammar", Constraint::Grammar(text(v, &p)?)));
    }
    // llama-server's top-level `json_schema`.
    if let Some(v) = get("json_schema") {
        out.push(("json_schema", Constraint::JsonSchema(schema(v, "json_schema")?)));
    }
    Ok(out)
}

/// The request's one constraint, if any.
pub fn constraint(o: &Map<String, Value>, tools: Option<&Tools>) -> Result<Option<Constraint>, ApiError> {
    let mut all = named(o)?;
    if let Some(c) = tools.and_then(Tools::constraint) {
        all.push(("tool_choice", c));
    }
    match all.len() {
        0 | 1 => Ok(all.pop().map(|(_, c)| c)),
        _ => {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            Err(ApiError::invalid(names[1], format!("Only one output constraint per request; this one has {}.", names.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(v: Value) -> Result<Option<Constraint>, ApiError> {
        constraint(v.as_object().unwrap_or(&Map::new()), None)
    }

    #[test]
    fn forms() {
        assert!(matches!(of(json!({})), Ok(None)));
        assert!(matches!(of(json!({"response_format": {"type": "text"}})), Ok(None)));
        assert!(matches!(of(json!({"response_format": {"type": "json_object"}})), Ok(Some(Constraint::JsonObject))));
        let s = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": {"type": "object"}}}});
        assert!(matches!(of(s), Ok(Some(Constraint::JsonSchema(t))) if t == r#"{"type":"object"}"#));
        assert!(matches!(of(json!({"guided_regex": "a+"})), Ok(Some(Constraint::Regex(r))) if r == "a+"));
        assert!(matches!(of(json!({"structured_outputs": {"choice": ["a", "b"]}})), Ok(Some(Constraint::Choice(c))) if c.len() == 2));
        assert!(matches!(of(json!({"guided_json": "{\"type\": \"integer\"}"})), Ok(Some(Constraint::JsonSchema(_)))));
    }

    #[test]
    fn bad_forms_are_400s() {
        for (body, param) in [
            (json!({"response_format": {"type": "yaml"}}), "response_format"),
            (json!({"response_format": {"type": "json_schema"}}), "response_format"),
            (json!({"response_format": {"type": "json_schema", "json_schema": {"schema": 3}}}), "response_format.json_schema.schema"),
            (json!({"guided_choice": []}), "guided_choice"),
            (json!({"guided_regex": "a", "guided_choice": ["b"]}), "guided_choice"),
        ] {
            let e = of(body.clone()).err().unwrap_or_else(|| panic!("{body} accepted"));
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}");
        }
    }
}
