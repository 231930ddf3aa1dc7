//! vLLM's tokenizer endpoints at the server root: `POST /tokenize` (a prompt,
//! or chat messages rendered with the model's template), `POST /detokenize`
//! and `GET /tokenizer_info`, so that clients such as lm-evaluation-harness
//! (`tokenizer_backend=remote`) tokenise exactly as the server does.

use crate::api;
use crate::error::ApiError;
use crate::handlers::{resolve_model, turns};
use crate::http;
use crate::reka::inference::preprocess;
use crate::reka::inference::types::ChatOptions;
use serde_json::{json, Map, Value};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

fn model_of(o: &Map<String, Value>) -> Result<String, ApiError> {
    match o.get("model") {
        None | Some(Value::Null) => resolve_model(None),
        Some(Value::String(m)) => resolve_model(Some(m)),
        Some(_) => Err(ApiError::invalid("model", "`model` must be a string.")),
    }
}

fn flag(o: &Map<String, Value>, key: &str, default: bool) -> Result<bool, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(key, format!("`{key}` must be a boolean."))),
    }
}

/// `POST /tokenize`: `{"prompt": text, "add_special_tokens": true}` or
/// `{"messages": [...]}`; answers `{"count", "max_model_len", "tokens", "token_strs"}`.
pub fn tokenize(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let answer = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let model = model_of(&o)?;
        let context = preprocess::encode_text(&model, "", false)?.context_length;
        let tokens = match (o.get("prompt"), o.get("messages")) {
            (Some(Value::String(text)), None) => preprocess::tokenize(&model, text, flag(&o, "add_special_tokens", true)?)?,
            (None, Some(_)) => {
                let tools = crate::tools::read(&o)?.map(|t| t.json);
                let chat = api::chat_options(&o)?;
                let options = ChatOptions { enable_thinking: chat.enable_thinking, video_frames: chat.video_frames, tools };
                preprocess::encode_chat(&model, &turns(api::messages(&o)?), &options)?.token_ids
            }
            _ => return Err(ApiError::invalid("prompt", "Give either `prompt` (a string) or `messages`.")),
        };
        let strs = if flag(&o, "return_token_strs", false)? {
            let each: Result<Vec<String>, ApiError> = tokens.iter().map(|&t| Ok(preprocess::detokenize(&model, &[t])?)).collect();
            json!(each?)
        } else {
            Value::Null
        };
        Ok::<_, ApiError>(json!({"count": tokens.len(), "max_model_len": context, "tokens": tokens, "token_strs": strs}))
    })();
    match answer {
        Ok(v) => http::json(out, 200, &v),
        Err(e) => http::error(out, e),
    }
}

/// `POST /detokenize`: `{"tokens": [ids]}`; answers `{"prompt": text}`.
pub fn detokenize(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let answer = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let model = model_of(&o)?;
        let bad = || ApiError::invalid("tokens", "`tokens` must be a list of token ids.");
        let ids = match o.get("tokens") {
            Some(Value::Array(a)) => a.iter().map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok())).collect::<Option<Vec<u32>>>().ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        Ok::<_, ApiError>(json!({"prompt": preprocess::detokenize(&model, &ids)?}))
    })();
    match answer {
        Ok(v) => http::json(out, 200, &v),
        Err(e) => http::error(out, e),
    }
}

/// `GET /tokenizer_info[?model=NAME]`: the tokenizer's settings.
pub fn info(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let path = req.path_with_query().unwrap_or_default();
    let model = path.split_once('?').and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("model=")).map(str::to_string));
    let answer = (|| {
        let model = resolve_model(model.as_deref())?;
        let text = preprocess::tokenizer_info(&model)?;
        serde_json::from_str::<Value>(&text).map_err(|e| {
            ApiError::from(crate::reka::inference::types::Error { kind: crate::reka::inference::types::ErrorKind::Internal, message: format!("tokenizer info: {e}") })
        })
    })();
    match answer {
        Ok(v) => http::json(out, 200, &v),
        Err(e) => http::error(out, e),
    }
}
