//! A Spin app written as any Spin user writes one, with spin-sdk 7: nothing in
//! it knows about reka-host. `POST /app/infer` answers a prompt with
//! `llm::infer_with_options`; `POST /app/embed` embeds sentences with
//! `llm::generate_embeddings`. Under Spin the model would be Spin's own
//! (`llama2-chat`); under `reka-host serve --manifest examples/spin-llm/spin.toml`
//! the runtime config maps that name to a Reka-family model.

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Json, Request, StatusCode};
use spin_sdk::http_service;
use spin_sdk::llm::{self, EmbeddingModel, InferencingModel, InferencingParams};

#[derive(Deserialize)]
struct Infer {
    prompt: String,
    /// Default: Spin's `llama2-chat`.
    model: Option<String>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    repeat_penalty: Option<f32>,
}

#[derive(Deserialize)]
struct Embed {
    sentences: Vec<String>,
    /// Default: Spin's `all-minilm-l6-v2`.
    model: Option<String>,
}

fn reply(status: StatusCode, body: Value) -> (StatusCode, Json<Value>) {
    (status, Json(body))
}

/// Spin's LLM errors as this app reports them.
fn failed(e: llm::Error) -> (StatusCode, Json<Value>) {
    match e {
        llm::Error::ModelNotSupported => reply(StatusCode::NOT_FOUND, json!({"error": "model not supported"})),
        llm::Error::InvalidInput(m) => reply(StatusCode::BAD_REQUEST, json!({"error": m})),
        llm::Error::RuntimeError(m) => reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": m})),
    }
}

fn infer(ask: Infer) -> (StatusCode, Json<Value>) {
    let model = match &ask.model {
        Some(m) => InferencingModel::Other(m),
        None => InferencingModel::Llama2Chat,
    };
    let defaults = InferencingParams::default();
    let options = InferencingParams {
        max_tokens: ask.max_tokens.unwrap_or(defaults.max_tokens),
        temperature: ask.temperature.unwrap_or(defaults.temperature),
        repeat_penalty: ask.repeat_penalty.unwrap_or(defaults.repeat_penalty),
        ..defaults
    };
    match llm::infer_with_options(model, &ask.prompt, options) {
        Ok(r) => reply(
            StatusCode::OK,
            json!({"text": r.text, "prompt_tokens": r.usage.prompt_token_count, "generated_tokens": r.usage.generated_token_count}),
        ),
        Err(e) => failed(e),
    }
}

fn embed(ask: Embed) -> (StatusCode, Json<Value>) {
    let model = match &ask.model {
        Some(m) => EmbeddingModel::Other(m),
        None => EmbeddingModel::AllMiniLmL6V2,
    };
    match llm::generate_embeddings(model, &ask.sentences) {
        Ok(r) => reply(StatusCode::OK, json!({"embeddings": r.embeddings, "prompt_tokens": r.usage.prompt_token_count})),
        Err(e) => failed(e),
    }
}

fn parsed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (StatusCode, Json<Value>)> {
    serde_json::from_slice(body).map_err(|e| reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})))
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let path = req.uri().path().to_string();
    let body = match req.into_body().bytes().await {
        Ok(b) => b,
        Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"error": format!("reading the body: {e:?}")})),
    };
    match path.as_str() {
        "/app/infer" => parsed(&body).map_or_else(|e| e, infer),
        "/app/embed" => parsed(&body).map_or_else(|e| e, embed),
        _ => reply(StatusCode::NOT_FOUND, json!({"error": format!("no route {path}")})),
    }
}
