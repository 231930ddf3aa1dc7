//! OpenAI's `tools`, `tool_choice` and `parallel_tool_calls`: which functions
//! the model is shown, and whether it must call one (enforced by constrained
//! decoding) or may answer in text.

use crate::error::ApiError;
use crate::reka::inference::types::{Constraint, ToolCalls, ToolSpec};
use serde_json::{Map, Value};

/// Whether and what the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The model decides: its text is parsed for calls.
    Auto,
    /// No calls: the answer is text.
    None,
    /// At least one call, to any of the tools.
    Required,
    /// One call of this function.
    Named(String),
}

/// A request's tools.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `tools` array as sent (key order kept), for the chat format.
    pub json: String,
    /// Each function's name and its parameters' schema.
    pub functions: Vec<(String, Value)>,
    pub choice: Choice,
    pub parallel: bool,
}

/// Most tools a request may carry.
const MAX_TOOLS: usize = 128;

/// Reads the tools of a chat request (`None` without any).
pub fn read(o: &Map<String, Value>) -> Result<Option<Tools>, ApiError> {
    let list = match o.get("tools") {
        None | Some(Value::Null) => return choice_without_tools(o),
        Some(Value::Array(a)) if a.is_empty() => return choice_without_tools(o),
        Some(Value::Array(a)) if a.len() <= MAX_TOOLS => a,
        Some(Value::Array(_)) => return Err(ApiError::invalid("tools", format!("At most {MAX_TOOLS} tools are supported."))),
        Some(_) => return Err(ApiError::invalid("tools", "`tools` must be a list.")),
    };
    let mut functions = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            _ => return Err(ApiError::invalid(&p, format!("`{p}.type` must be \"function\"."))),
        }
        let f = t.get("function").and_then(Value::as_object).ok_or_else(|| ApiError::invalid(&p, format!("`{p}.function` must be an object.")))?;
        let name = f.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or_else(|| ApiError::invalid(&p, format!("`{p}.function.name` must be a non-empty string.")))?;
        if functions.iter().any(|(n, _)| n == name) {
            return Err(ApiError::invalid(&p, format!("Two tools are named {name:?}.")));
        }
        let params = match f.get("parameters") {
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(ApiError::invalid(&p, format!("`{p}.function.parameters` must be a JSON schema object."))),
        };
        functions.push((name.to_string(), params));
    }
    let choice = match o.get("tool_choice") {
        None | Some(Value::Null) => Choice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" => Choice::Required,
            _ => return Err(bad_choice()),
        },
        Some(Value::Object(c)) => {
            let name = c.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(bad_choice)?;
            if !functions.iter().any(|(n, _)| n == name) {
                return Err(ApiError::invalid("tool_choice", format!("`tool_choice` names the function {name:?}, which is not in `tools`.")));
            }
            Choice::Named(name.to_string())
        }
        Some(_) => return Err(bad_choice()),
    };
    let parallel = match o.get("parallel_tool_calls") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("parallel_tool_calls", "`parallel_tool_calls` must be a boolean.")),
    };
    let json = Value::Array(list.clone()).to_string();
    Ok(Some(Tools { json, functions, choice, parallel }))
}

fn bad_choice() -> ApiError {
    ApiError::invalid("tool_choice", "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": …}}.")
}

/// `tool_choice` without tools: only `none` and `auto` make sense.
fn choice_without_tools(o: &Map<String, Value>) -> Result<Option<Tools>, ApiError> {
    match o.get("tool_choice") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "none" || s == "auto" => Ok(None),
        Some(_) => Err(ApiError::invalid("tool_choice", "`tool_choice` needs `tools`.")),
    }
}

impl Tools {
    /// Whether the answer is read for tool calls.
    pub fn parses_calls(&self) -> bool {
        self.choice != Choice::None
    }

    /// The constraint that enforces `required` and a named choice.
    pub fn constraint(&self) -> Option<Constraint> {
        let spec = |(name, params): &(String, Value)| ToolSpec { name: name.clone(), parameters: params.to_string() };
        let tools: Vec<ToolSpec> = match &self.choice {
            Choice::Auto | Choice::None => return None,
            Choice::Required => self.functions.iter().map(spec).collect(),
            Choice::Named(n) => self.functions.iter().filter(|(f, _)| f == n).map(spec).collect(),
        };
        // A named choice is one call of that function.
        let parallel = self.parallel && self.choice == Choice::Required;
        Some(Constraint::ToolCalls(ToolCalls { tools, parallel }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn weather() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
    }

    #[test]
    fn choices() {
        let t = read(&obj(json!({"tools": weather()}))).ok().flatten().map(|t| t.choice);
        assert_eq!(t, Some(Choice::Auto));
        let named = json!({"tools": weather(), "tool_choice": {"type": "function", "function": {"name": "get_weather"}}});
        let t = read(&obj(named)).ok().flatten();
        assert_eq!(t.as_ref().map(|t| t.choice.clone()), Some(Choice::Named("get_weather".into())));
        assert!(matches!(t.and_then(|t| t.constraint()), Some(Constraint::ToolCalls(c)) if c.tools.len() == 1 && !c.parallel));
        let none = read(&obj(json!({"tools": weather(), "tool_choice": "none"}))).ok().flatten();
        assert!(none.is_some_and(|t| t.constraint().is_none() && !t.parses_calls()));
    }

    #[test]
    fn bad_tools_are_400s_naming_the_field() {
        for (body, param) in [
            (json!({"tools": {}}), "tools"),
            (json!({"tools": [{"type": "retrieval"}]}), "tools[0]"),
            (json!({"tools": [{"type": "function", "function": {"name": ""}}]}), "tools[0]"),
            (json!({"tools": weather(), "tool_choice": "always"}), "tool_choice"),
            (json!({"tools": weather(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}), "tool_choice"),
            (json!({"tool_choice": "required"}), "tool_choice"),
        ] {
            let e = read(&obj(body.clone())).err().unwrap_or_else(|| panic!("{body} accepted"));
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}");
        }
    }
}
