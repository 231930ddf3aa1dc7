//! OpenAI-style error responses made by the host itself (no route, a failed
//! component); the gateway component makes the ones about request content.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A JSON error response `{"error": {"message", "type", "code"}}`.
pub fn response(status: u16, kind: &str, message: &str) -> hyper::Response<HyperOutgoingBody> {
    response_typed(status, kind, kind, message)
}

/// As [`response`], with the error's `type` and `code` apart (as OpenAI's
/// `invalid_request_error` / `invalid_api_key`).
pub fn response_typed(status: u16, kind: &str, code: &str, message: &str) -> hyper::Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    })
    .to_string();
    text(status, "application/json", body)
}

/// 503 with `Retry-After: 1`: the server is full or going away; retrying may succeed.
pub fn retry_later(message: String) -> hyper::Response<HyperOutgoingBody> {
    let mut resp = response_typed(503, "server_error", "overloaded", &message);
    resp.headers_mut()
        .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
    resp
}

/// A response of `content_type` with `body`.
pub fn text(status: u16, content_type: &'static str, body: String) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

/// An empty response.
pub fn empty(status: u16) -> hyper::Response<HyperOutgoingBody> {
    let mut resp = text(status, "text/plain", String::new());
    resp.headers_mut().remove(hyper::header::CONTENT_TYPE);
    resp
}
