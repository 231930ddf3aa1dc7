//! A tiny spin-sdk 7 component: it exports `wasi:http/handler@0.3` (WASIp3), so
//! the host's p3 serving path has a real guest to run in the tests. It answers
//! with the request path and the models the host announces; on a path ending in
//! `/spin` it loops forever instead (the host's time limit and cancellation are
//! tested with that).

use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    if req.uri().path().ends_with("/spin") {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    let models = std::env::var("REKA_MODELS").unwrap_or_default();
    (StatusCode::OK, format!("p3 hello from {} (models: {models})", req.uri().path()))
}
