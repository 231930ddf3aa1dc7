//! Parses and validates OpenAI-style request bodies into what the components
//! need; every problem becomes a 400 that names the field.

use crate::error::ApiError;
use crate::parts::{parts, Part};
use crate::reasoning::ReasoningFormat;
use serde_json::{Map, Value};

/// Sampling and output options shared by both endpoints.
#[derive(Debug, Clone)]
pub struct Options {
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: u32,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// What to do with a reasoning model's reasoning (`reasoning_format`).
    pub reasoning: ReasoningFormat,
}

/// Chat options that change the prompt, as vLLM takes them:
/// `chat_template_kwargs.enable_thinking` and `media_io_kwargs.video.num_frames`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatOptions {
    pub enable_thinking: Option<bool>,
    pub video_frames: Option<u32>,
}

/// Reads [`ChatOptions`] from a chat request.
pub fn chat_options(o: &Map<String, Value>) -> Result<ChatOptions, ApiError> {
    let thinking = o.get("chat_template_kwargs").filter(|v| !v.is_null());
    let enable_thinking = match thinking.map(|k| k.get("enable_thinking")) {
        None | Some(None) | Some(Some(Value::Null)) => None,
        Some(Some(Value::Bool(b))) => Some(*b),
        Some(Some(_)) => {
            return Err(ApiError::invalid("chat_template_kwargs", "`chat_template_kwargs.enable_thinking` must be a boolean."))
        }
    };
    let frames = o.get("media_io_kwargs").and_then(|m| m.get("video")).and_then(|v| v.get("num_frames"));
    let video_frames = match frames {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=u32::MAX as u64).contains(&n) => Some(n as u32),
            _ => {
                return Err(ApiError::invalid("media_io_kwargs", "`media_io_kwargs.video.num_frames` must be a positive integer."))
            }
        },
    };
    Ok(ChatOptions { enable_thinking, video_frames })
}

/// A message of a chat request: text and media parts, and an assistant's
/// tool calls or a tool result's call id.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: Vec<Part>,
    pub tool_calls: Vec<ToolCall>,
    pub tool_call_id: Option<String>,
}

/// A tool call of an earlier assistant turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments' JSON text.
    pub arguments: String,
}

/// `messages[i].tool_calls`, as OpenAI sends them.
fn tool_calls(m: &Value, p: &str) -> Result<Vec<ToolCall>, ApiError> {
    let list = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid(p, format!("`{p}.tool_calls` must be a list."))),
    };
    list.iter()
        .enumerate()
        .map(|(j, c)| {
            let q = format!("{p}.tool_calls[{j}]");
            let f = c.get("function").ok_or_else(|| ApiError::invalid(&q, format!("`{q}.function` is missing.")))?;
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| ApiError::invalid(&q, format!("`{q}.function.name` must be a string.")))?;
            let arguments = match f.get("arguments") {
                Some(Value::String(a)) => a.clone(),
                None | Some(Value::Null) => "{}".to_string(),
                Some(v @ Value::Object(_)) => v.to_string(),
                Some(_) => return Err(ApiError::invalid(&q, format!("`{q}.function.arguments` must be a JSON string."))),
            };
            let id = c.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            Ok(ToolCall { id, name: name.to_string(), arguments })
        })
        .collect()
}

/// What a completions request asks to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
}

/// Parses the body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_body(format!("The request body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_body("The request body must be a JSON object.")),
    }
}

/// `key` as a number, if present and not null.
pub fn number(o: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(ApiError::invalid(key, format!("`{key}` must be a number."))),
    }
}

/// `key` as an integer, if present and not null.
pub fn integer(o: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| u as i64))
            .map(Some)
            .ok_or_else(|| ApiError::invalid(key, format!("`{key}` must be an integer."))),
        Some(_) => Err(ApiError::invalid(key, format!("`{key}` must be an integer."))),
    }
}

/// Reads the options both endpoints share; `default_temperature` is OpenAI's 1.0.
pub fn options(o: &Map<String, Value>) -> Result<Options, ApiError> {
    let model = match o.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid("model", "`model` must be a non-empty string.")),
    };
    let max_tokens = match integer(o, "max_completion_tokens")?.or(integer(o, "max_tokens")?) {
        None => None,
        // 0 only scores the prompt (completions with `echo`; checked there).
        Some(n) if (0..=u32::MAX as i64).contains(&n) => Some(n as u32),
        Some(n) => return Err(ApiError::invalid("max_tokens", format!("`max_tokens` must be at least 0, got {n}."))),
    };
    let temperature = number(o, "temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("temperature", "`temperature` must be between 0 and 2."));
    }
    let top_p = number(o, "top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p", "`top_p` must be in (0, 1]."));
    }
    let top_k = match integer(o, "top_k")? {
        None | Some(-1) | Some(0) => 0,
        Some(k) if k > 0 => k.min(u32::MAX as i64) as u32,
        Some(_) => return Err(ApiError::invalid("top_k", "`top_k` must be -1, 0 or positive.")),
    };
    let seed = integer(o, "seed")?.map(|s| s as u64);
    let stop = match o.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::invalid("stop", "`stop` must be a string or a list of strings."))?,
        Some(_) => return Err(ApiError::invalid("stop", "`stop` must be a string or a list of strings.")),
    };
    if stop.len() > 16 {
        return Err(ApiError::invalid("stop", "At most 16 stop strings are supported."));
    }
    let stream = match o.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("stream", "`stream` must be a boolean.")),
    };
    let include_usage = o
        .get("stream_options")
        .and_then(|s| s.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let reasoning = match o.get("reasoning_format") {
        None | Some(Value::Null) => ReasoningFormat::default(),
        Some(Value::String(s)) => ReasoningFormat::parse(s).ok_or_else(|| {
            ApiError::invalid("reasoning_format", "`reasoning_format` must be \"parsed\", \"raw\" or \"hidden\".")
        })?,
        Some(_) => return Err(ApiError::invalid("reasoning_format", "`reasoning_format` must be a string.")),
    };
    Ok(Options {
        model,
        max_tokens,
        temperature: temperature as f32,
        top_p: top_p as f32,
        top_k,
        seed,
        stop,
        stream,
        include_usage,
        reasoning,
    })
}

/// Reads `messages` of a chat request. Content may be a string or a list of
/// parts ([`crate::parts`]).
pub fn messages(o: &Map<String, Value>) -> Result<Vec<Message>, ApiError> {
    let list = match o.get("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("messages", "Missing required parameter: `messages`."))
        }
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(ApiError::invalid("messages", "`messages` must not be empty.")),
        Some(_) => return Err(ApiError::invalid("messages", "`messages` must be a list.")),
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let p = format!("messages[{i}]");
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid(&p, format!("`{p}.role` must be a string.")))?;
            if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
                return Err(ApiError::invalid(&p, format!("`{p}.role` {role:?} is not one of system, developer, user, assistant, tool.")));
            }
            let content = match m.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                Some(Value::Array(list)) => parts(list, &p)?,
                Some(_) => return Err(ApiError::invalid(&p, format!("`{p}.content` must be a string or a list of parts."))),
            };
            let role = if role == "developer" { "system" } else { role };
            let tool_calls = if role == "assistant" { tool_calls(m, &p)? } else { Vec::new() };
            let tool_call_id = m.get("tool_call_id").and_then(Value::as_str).map(str::to_string);
            Ok(Message {
                role: role.to_string(),
                content,
                tool_calls,
                tool_call_id,
            })
        })
        .collect()
}

/// Reads `parse_special` of a completions request: whether special token
/// strings in the prompt (e.g. `<|im_start|>`) become special tokens. Off by
/// default, so a prompt is plain text. The name is llama.cpp's
/// (`llama_tokenize`'s `parse_special`, llama-server's `/tokenize`); vLLM has
/// no such option (it always parses them).
pub fn parse_special(o: &Map<String, Value>) -> Result<bool, ApiError> {
    match o.get("parse_special") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid("parse_special", "`parse_special` must be a boolean.")),
    }
}

/// Most prompts in one completions request.
pub const MAX_PROMPTS: usize = 256;

/// Reads `prompt` of a completions request, as OpenAI and vLLM take it: a
/// string, a list of strings, a list of token ids, or a list of token-id
/// lists; one choice (or `n`) per prompt, in order.
pub fn prompts(o: &Map<String, Value>) -> Result<Vec<PromptInput>, ApiError> {
    let bad = || ApiError::invalid("prompt", "`prompt` must be a string, a list of strings, a list of token ids, or a list of token-id lists, none empty.");
    let list = match o.get("prompt") {
        None | Some(Value::Null) => return Err(ApiError::invalid("prompt", "Missing required parameter: `prompt`.")),
        Some(Value::String(s)) => return Ok(vec![PromptInput::Text(s.clone())]),
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => return ids_of(a).map(|p| vec![p]).ok_or_else(bad),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad()),
    };
    if list.is_empty() || list.len() > MAX_PROMPTS {
        return Err(ApiError::invalid("prompt", format!("`prompt` must hold 1 to {MAX_PROMPTS} prompts.")));
    }
    list.iter()
        .map(|p| match p {
            Value::String(s) => Some(PromptInput::Text(s.clone())),
            Value::Array(ids) => ids_of(ids),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)
}

fn ids_of(a: &[Value]) -> Option<PromptInput> {
    if a.is_empty() {
        return None;
    }
    a.iter()
        .map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
        .collect::<Option<Vec<u32>>>()
        .map(PromptInput::Ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn rejects_bad_json_and_missing_messages() {
        assert_eq!(object(b"{nope").map(|_| ()).unwrap_err().status, 400);
        let e = messages(&obj(json!({"model": "x"}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
    }

    #[test]
    fn reads_text_parts_and_options() {
        let o = obj(json!({
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
            "max_tokens": 5, "temperature": 0, "stop": "x", "stream": true, "top_k": -1
        }));
        let text = vec![Part::Text("a".into()), Part::Text("b".into())];
        assert_eq!(messages(&o).map(|m| m[0].content.clone()).ok(), Some(text));
        let opts = options(&o).map_err(|e| e.message).unwrap_or_else(|m| panic!("{m}"));
        assert_eq!((opts.max_tokens, opts.temperature, opts.top_k), (Some(5), 0.0, 0));
        assert_eq!(opts.stop, vec!["x".to_string()]);
        assert!(opts.stream);
    }

    #[test]
    fn rejects_out_of_range_options() {
        for bad in [json!({"temperature": 3}), json!({"top_p": 0}), json!({"max_tokens": -1}),
                    json!({"stop": [1]}), json!({"stream": "yes"})] {
            assert_eq!(options(&obj(bad.clone())).map(|_| ()).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn parse_special_is_an_explicit_boolean_off_by_default() {
        assert_eq!(parse_special(&obj(json!({"prompt": "x"}))).ok(), Some(false));
        assert_eq!(parse_special(&obj(json!({"parse_special": null}))).ok(), Some(false));
        assert_eq!(parse_special(&obj(json!({"parse_special": true}))).ok(), Some(true));
        assert_eq!(parse_special(&obj(json!({"parse_special": false}))).ok(), Some(false));
        for bad in [json!("true"), json!(1), json!([true])] {
            assert!(parse_special(&obj(json!({"parse_special": bad}))).is_err());
        }
    }

    #[test]
    fn prompt_forms() {
        let text = |s: &str| PromptInput::Text(s.into());
        assert_eq!(prompts(&obj(json!({"prompt": "hi"}))).ok(), Some(vec![text("hi")]));
        assert_eq!(prompts(&obj(json!({"prompt": ["hi", "yo"]}))).ok(), Some(vec![text("hi"), text("yo")]));
        assert_eq!(prompts(&obj(json!({"prompt": [1, 2]}))).ok(), Some(vec![PromptInput::Ids(vec![1, 2])]));
        assert_eq!(prompts(&obj(json!({"prompt": [[1, 2], [3]]}))).ok(), Some(vec![PromptInput::Ids(vec![1, 2]), PromptInput::Ids(vec![3])]));
        for bad in [json!(3), json!([]), json!([[]]), json!([[1], "x", 2]), json!([-1]), json!([[1.5]])] {
            assert!(prompts(&obj(json!({"prompt": bad}))).is_err(), "{bad}");
        }
    }
}
