//! OpenAI-style error responses made by the host itself (no route, a failed
//! component); the gateway component makes the ones about request content.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A JSON error response `{"error": {"message", "type", "code"}}`.
pub fn response(status: u16, kind: &str, message: &str) -> hyper::Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": kind }
    })
    .to_string();
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
