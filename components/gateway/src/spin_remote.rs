//! Spin's `remote_http` inference (`POST /infer`, the default api type of
//! Spin's `llm-remote-http` crate): `{"model", "prompt", "options": {maxTokens,
//! repeatPenalty, repeatPenaltyLastNTokenCount, temperature, topK, topP}}` in,
//! `{"text", "usage": {"promptTokenCount", "generatedTokenCount"}}` out. The
//! remote Spin has checked its component's `ai_models`; the bearer token is
//! the host's API key.

use crate::api;
use crate::error::ApiError;
use crate::handlers::resolve_model;
use crate::http;
use crate::reka::inference::spin_infer::infer as spin_infer;
use crate::reka::inference::types::SpinParams;
use reka_protocol::spin::SPIN_DEFAULTS;
use serde::Serialize;
use serde_json::{Map, Value};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

fn float(o: &Map<String, Value>, key: &str, default: f32) -> Result<f32, ApiError> {
    Ok(api::number(o, key)?.map_or(default, |v| v as f32))
}

fn count(o: &Map<String, Value>, key: &str, default: u32) -> Result<u32, ApiError> {
    match api::integer(o, key)? {
        None => Ok(default),
        Some(n) => u32::try_from(n).map_err(|_| ApiError::invalid(key, format!("`{key}` must be an integer from 0 to {}.", u32::MAX))),
    }
}

/// `options`, each field Spin's default when absent.
pub(crate) fn params(o: &Map<String, Value>) -> Result<SpinParams, ApiError> {
    let empty = Map::new();
    let p = match o.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::invalid("options", "`options` must be an object.")),
    };
    let d = SPIN_DEFAULTS;
    Ok(SpinParams {
        max_tokens: count(p, "maxTokens", d.max_tokens)?,
        repeat_penalty: float(p, "repeatPenalty", d.repeat_penalty)?,
        repeat_penalty_last_n_token_count: count(p, "repeatPenaltyLastNTokenCount", d.repeat_penalty_last_n_token_count)?,
        temperature: float(p, "temperature", d.temperature)?,
        top_k: count(p, "topK", d.top_k)?,
        top_p: float(p, "topP", d.top_p)?,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    prompt_token_count: u32,
    generated_token_count: u32,
}

#[derive(Serialize)]
struct Answer {
    text: String,
    usage: Usage,
}

/// `POST /infer`.
pub fn infer(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let done = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let model = match o.get("model") {
            Some(Value::String(m)) => resolve_model(Some(m))?,
            None | Some(Value::Null) => return Err(ApiError::invalid("model", "`model` is required.")),
            Some(_) => return Err(ApiError::invalid("model", "`model` must be a string.")),
        };
        let prompt = match o.get("prompt") {
            Some(Value::String(p)) => p.clone(),
            _ => return Err(ApiError::invalid("prompt", "`prompt` must be a string.")),
        };
        let a = spin_infer(&model, &prompt, Some(params(&o)?))?;
        Ok::<_, ApiError>(Answer {
            text: a.text,
            usage: Usage { prompt_token_count: a.prompt_token_count, generated_token_count: a.generated_token_count },
        })
    })();
    match done {
        Ok(a) => http::json(out, 200, &a),
        Err(e) => http::error(out, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn spin_fields_are_camel_case_and_default_to_spins() {
        let p = params(&obj(json!({"options": {"maxTokens": 7, "repeatPenalty": 1.0, "repeatPenaltyLastNTokenCount": 3, "temperature": 0.0, "topK": 1, "topP": 0.5}})));
        let p = p.ok().map(|p| (p.max_tokens, p.repeat_penalty, p.repeat_penalty_last_n_token_count, p.temperature, p.top_k, p.top_p));
        assert_eq!(p, Some((7, 1.0, 3, 0.0, 1, 0.5)));
        let d = params(&obj(json!({}))).ok().map(|p| (p.max_tokens, p.top_k));
        assert_eq!(d, Some((SPIN_DEFAULTS.max_tokens, SPIN_DEFAULTS.top_k)));
        for bad in [json!({"options": 1}), json!({"options": {"maxTokens": -1}}), json!({"options": {"topP": "x"}})] {
            assert!(params(&obj(bad.clone())).is_err(), "{bad}");
        }
    }
}
