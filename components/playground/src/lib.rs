//! The web UI's static files, built into the component (no `files` mount, no
//! build step): the playground at `/`, and the scripts and style the playground
//! and the arena share under `/ui/`. The pages are plain HTML, CSS and JS in
//! `assets/`; they talk to the OpenAI-compatible API and the arena's API of the
//! same app from the browser.

use spin_sdk::http::{HeaderMap, HeaderValue, IntoResponse, Method, Request, StatusCode};
use spin_sdk::http_service;

/// `(path, content type, body)` of every file served.
const FILES: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("../assets/index.html")),
    ("/ui/style.css", "text/css; charset=utf-8", include_str!("../assets/style.css")),
    ("/ui/chat.js", "text/javascript; charset=utf-8", include_str!("../assets/chat.js")),
    ("/ui/playground.js", "text/javascript; charset=utf-8", include_str!("../assets/playground.js")),
    ("/ui/arena.js", "text/javascript; charset=utf-8", include_str!("../assets/arena.js")),
    ("/ui/leaderboard.js", "text/javascript; charset=utf-8", include_str!("../assets/leaderboard.js")),
];

fn reply(status: StatusCode, content_type: &'static str, body: &str) -> (StatusCode, HeaderMap, String) {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    // Built into the component: a new build is a new page.
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    (status, headers, body.to_string())
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "application/json", r#"{"error":{"message":"only GET","type":"invalid_request_error","code":"method_not_allowed"}}"#);
    }
    match FILES.iter().find(|(path, _, _)| *path == req.uri().path()) {
        Some((_, content_type, body)) => reply(StatusCode::OK, content_type, body),
        None => reply(StatusCode::NOT_FOUND, "application/json", r#"{"error":{"message":"no such page","type":"invalid_request_error","code":"not_found"}}"#),
    }
}
