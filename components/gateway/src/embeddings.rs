//! Embeddings: OpenAI's `POST /v1/embeddings` (also what Spin's `open_ai`
//! remote engine calls) and Spin's `remote_http` `POST /embed`. The vectors
//! come from an embedding graph through the generate component's `embed`.

use crate::api;
use crate::error::ApiError;
use crate::http;
use crate::reka::inference::generate::embed;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

/// Most texts in one request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// The served embedding models, the default first (set by the host).
pub fn embedding_models() -> Vec<String> {
    std::env::var("REKA_EMBEDDING_MODELS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The embedding model `model` names, or the default one; a language model's
/// name gets a 400 that says where it belongs.
fn resolve(model: Option<&str>) -> Result<String, ApiError> {
    let served = embedding_models();
    match model {
        Some(m) if served.iter().any(|s| s == m) => Ok(m.to_string()),
        Some(m) if crate::handlers::resolve_model(Some(m)).is_ok() => Err(ApiError::invalid(
            "model",
            format!("`{m}` is a language model; it makes no embeddings (embedding models here: {}).", served.join(", ")),
        )),
        Some(m) => Err(ApiError::model_not_found(m)),
        None => served.first().cloned().ok_or_else(|| ApiError::model_not_found("(default embedding model)")),
    }
}

fn model_of(o: &Map<String, Value>) -> Result<String, ApiError> {
    match o.get("model") {
        None | Some(Value::Null) => resolve(None),
        Some(Value::String(m)) => resolve(Some(m)),
        Some(_) => Err(ApiError::invalid("model", "`model` must be a string.")),
    }
}

/// `input`: a string or a list of strings (token-id inputs are refused: the
/// embedding model tokenises its own text).
pub(crate) fn inputs(o: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    let texts = match o.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::Array(a)) if a.iter().all(|v| v.is_number() || v.is_array()) => {
            return Err(ApiError::invalid(key, format!("`{key}` as token ids is not supported here; send the text.")))
        }
        None | Some(Value::Null) => return Err(ApiError::invalid(key, format!("`{key}` is required."))),
        Some(_) => return Err(ApiError::invalid(key, format!("`{key}` must be a string or a list of strings."))),
    };
    if texts.is_empty() {
        return Err(ApiError::invalid(key, format!("`{key}` must not be empty.")));
    }
    if texts.len() > MAX_INPUTS {
        return Err(ApiError::invalid(key, format!("`{key}` holds {} texts; at most {MAX_INPUTS} are allowed.", texts.len())));
    }
    Ok(texts)
}

/// How the vectors are written: JSON numbers, or base64 of little-endian f32s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Encoding {
    Float,
    Base64,
}

pub(crate) fn encoding(o: &Map<String, Value>) -> Result<Encoding, ApiError> {
    match o.get("encoding_format") {
        None | Some(Value::Null) => Ok(Encoding::Float),
        Some(Value::String(s)) if s == "float" => Ok(Encoding::Float),
        Some(Value::String(s)) if s == "base64" => Ok(Encoding::Base64),
        Some(_) => Err(ApiError::invalid("encoding_format", "`encoding_format` must be \"float\" or \"base64\".")),
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    total_tokens: u32,
}

#[derive(Serialize)]
struct OpenAiList {
    object: &'static str,
    data: Vec<Item>,
    model: String,
    usage: Usage,
}

fn vector(v: Vec<f32>, enc: Encoding) -> Vector {
    match enc {
        Encoding::Float => Vector::Float(v),
        Encoding::Base64 => {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// `POST /v1/embeddings`.
pub fn openai(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let done = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let model = model_of(&o)?;
        let texts = inputs(&o, "input")?;
        let enc = encoding(&o)?;
        let dims = api::integer(&o, "dimensions")?;
        let e = embed(&model, &texts)?;
        let width = e.vectors.first().map_or(0, Vec::len);
        if let Some(d) = dims.filter(|&d| d != width as i64) {
            return Err(ApiError::invalid("dimensions", format!("`{model}` makes vectors of {width} dimensions; `dimensions` {d} is not supported.")));
        }
        let data = e.vectors.into_iter().enumerate().map(|(index, v)| Item { object: "embedding", index, embedding: vector(v, enc) }).collect();
        let usage = Usage { prompt_tokens: e.prompt_tokens, total_tokens: e.prompt_tokens };
        Ok::<_, ApiError>(OpenAiList { object: "list", data, model, usage })
    })();
    match done {
        Ok(list) => http::json(out, 200, &list),
        Err(e) => http::error(out, e),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpinUsage {
    prompt_token_count: u32,
}

#[derive(Serialize)]
struct SpinEmbeddings {
    embeddings: Vec<Vec<f32>>,
    usage: SpinUsage,
}

/// `POST /embed`: Spin's `remote_http` embeddings (`{"model", "input"}` in,
/// `{"embeddings", "usage": {"promptTokenCount"}}` out).
pub fn spin(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let done = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let model = model_of(&o)?;
        // Spin sends the app's list as it is, empty or not.
        let texts = match o.get("input") {
            Some(Value::Array(a)) if a.is_empty() => Vec::new(),
            _ => inputs(&o, "input")?,
        };
        let e = embed(&model, &texts)?;
        Ok::<_, ApiError>(SpinEmbeddings { embeddings: e.vectors, usage: SpinUsage { prompt_token_count: e.prompt_tokens } })
    })();
    match done {
        Ok(r) => http::json(out, 200, &r),
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
    fn input_forms_and_refusals() {
        assert_eq!(inputs(&obj(json!({"input": "a"})), "input").ok(), Some(vec!["a".to_string()]));
        assert_eq!(inputs(&obj(json!({"input": ["a", ""]})), "input").ok(), Some(vec!["a".to_string(), String::new()]));
        for bad in [json!({}), json!({"input": []}), json!({"input": [1, 2]}), json!({"input": [[1]]}), json!({"input": 3}), json!({"input": ["a", 1]})] {
            let e = inputs(&obj(bad.clone()), "input").err();
            assert!(e.is_some_and(|e| e.status == 400 && e.param.as_deref() == Some("input")), "{bad}");
        }
        let many = vec!["x"; MAX_INPUTS + 1];
        assert!(inputs(&obj(json!({ "input": many })), "input").is_err());
    }

    #[test]
    fn encodings_and_base64_is_little_endian_f32() {
        assert_eq!(encoding(&obj(json!({}))).ok(), Some(Encoding::Float));
        assert_eq!(encoding(&obj(json!({"encoding_format": "base64"}))).ok(), Some(Encoding::Base64));
        assert!(encoding(&obj(json!({"encoding_format": "int8"}))).is_err());
        // 1.0f32 = 00 00 80 3f; 2 floats: "AACAPwAAAEA="
        match vector(vec![1.0, 2.0], Encoding::Base64) {
            Vector::Base64(s) => assert_eq!(s, "AACAPwAAAEA="),
            Vector::Float(_) => panic!("expected base64"),
        }
    }
}
