//! The gateway component: speaks HTTP and JSON only. It exports
//! `wasi:http/incoming-handler`, validates OpenAI-style requests, asks the
//! preprocess component for token ids and the generate component for text, and
//! streams the answer (server-sent events) as it is made. Spin's `remote_http`
//! LLM protocol (`/infer`, `/embed`) is served beside the OpenAI API.

mod answer;
mod api;
mod calls;
mod choices;
mod embeddings;
mod error;
mod handlers;
mod http;
mod logprobs;
mod parts;
mod reasoning;
mod sampling;
mod spin_remote;
mod structured;
mod tokenize;
mod tools;
#[cfg(test)]
mod fuzz_replay;

wit_bindgen::generate!({
    world: "gateway",
    path: "../../wit",
});

use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

struct Gateway;

impl wasip2::exports::http::incoming_handler::Guest for Gateway {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default().to_string();
        let method = request.method();
        if let Some(id) = request.headers().get("x-request-id").into_iter().next() {
            let _ = error::REQUEST_ID.set(String::from_utf8_lossy(&id).into_owned());
        }
        let result = match (&method, path.trim_end_matches('/')) {
            (Method::Get, "/health") => http::json(out, 200, &serde_json::json!({"status": "ok"})),
            (Method::Get, "/v1/models") => http::json(out, 200, &handlers::models()),
            (Method::Post, "/v1/chat/completions") => handlers::chat(request, out),
            (Method::Post, "/v1/completions") => handlers::completions(request, out),
            (Method::Post, "/tokenize") => tokenize::tokenize(request, out),
            (Method::Post, "/detokenize") => tokenize::detokenize(request, out),
            (Method::Get, "/tokenizer_info") => tokenize::info(request, out),
            (Method::Post, "/v1/embeddings") => embeddings::openai(request, out),
            (Method::Post, "/infer") => spin_remote::infer(request, out),
            (Method::Post, "/embed") => embeddings::spin(request, out),
            (_, "/health" | "/v1/models" | "/v1/chat/completions" | "/v1/completions" | "/tokenize" | "/detokenize" | "/tokenizer_info")
            | (_, "/v1/embeddings" | "/infer" | "/embed") => {
                http::error(out, error::ApiError::method_not_allowed())
            }
            _ => http::error(out, error::ApiError::not_found(&path)),
        };
        if let Err(e) = result {
            eprintln!("gateway: response failed: {e}");
        }
    }
}

wasip2::http::proxy::export!(Gateway);
