//! A tiny spin-sdk 7 component: it exports `wasi:http/handler@0.3` (WASIp3), so
//! the host's p3 serving path has a real guest to run in the tests. It answers
//! with the request path and the models the host announces.

use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let models = std::env::var("REKA_MODELS").unwrap_or_default();
    (StatusCode::OK, format!("p3 hello from {} (models: {models})", req.uri().path()))
}
