//! API errors with their HTTP status and OpenAI's error body:
//! `{"error": {"message", "type", "param", "code"}}`.

use crate::reka::inference::types::{Error as WitError, ErrorKind};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// This request's `x-request-id` (set by the host); one instance serves one request.
pub static REQUEST_ID: OnceLock<String> = OnceLock::new();

/// An error to answer with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 about one request field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            message: message.into(),
            param: Some(param.to_string()),
            code: None,
        }
    }

    /// 400 about the body as a whole.
    pub fn bad_body(message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: 413,
            kind: "invalid_request_error",
            message: format!("The request body is larger than {limit} bytes."),
            param: None,
            code: Some("request_too_large"),
        }
    }

    pub fn not_found(path: &str) -> Self {
        ApiError {
            status: 404,
            kind: "invalid_request_error",
            message: format!("Unknown path {path}."),
            param: None,
            code: Some("not_found"),
        }
    }

    pub fn method_not_allowed() -> Self {
        ApiError {
            status: 405,
            kind: "invalid_request_error",
            message: "Method not allowed for this path.".into(),
            param: None,
            code: Some("method_not_allowed"),
        }
    }

    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            status: 404,
            kind: "invalid_request_error",
            message: format!("The model `{model}` does not exist."),
            param: Some("model".into()),
            code: Some("model_not_found"),
        }
    }

    /// The body of the error response.
    pub fn body(&self) -> Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<WitError> for ApiError {
    fn from(e: WitError) -> Self {
        match e.kind {
            ErrorKind::InvalidRequest => ApiError::bad_body(e.message),
            ErrorKind::ContextFull => ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::bad_body(e.message)
            },
            ErrorKind::ModelNotFound => ApiError {
                message: e.message,
                ..ApiError::model_not_found("")
            },
            ErrorKind::Overloaded => ApiError {
                status: 503,
                kind: "server_error",
                message: e.message,
                param: None,
                code: Some("overloaded"),
            },
            ErrorKind::Busy => ApiError {
                status: 429,
                kind: "rate_limit_error",
                message: e.message,
                param: None,
                code: Some("too_many_requests"),
            },
            ErrorKind::Internal => {
                // The details (an engine's error text) go to the log only, under
                // the request id the host gave this request and its response.
                let id = REQUEST_ID.get().map_or("?", String::as_str);
                eprintln!("gateway: request {id}: internal error: {}", e.message);
                ApiError {
                    status: 500,
                    kind: "server_error",
                    message: format!("The server had an error while processing your request (x-request-id {id})."),
                    param: None,
                    code: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_reach_the_client_without_their_details() {
        let e = ApiError::from(WitError {
            kind: ErrorKind::Internal,
            message: "engine: shape mismatch in matmul at host/src/model/llama.rs:120".into(),
        });
        assert_eq!(e.status, 500);
        assert!(!e.message.contains("llama.rs"), "{}", e.message);
        assert!(!e.message.contains("shape"), "{}", e.message);
        assert!(e.message.contains("x-request-id"), "{}", e.message);
        // Errors about the request itself keep their message.
        let bad = ApiError::from(WitError { kind: ErrorKind::InvalidRequest, message: "max_tokens must be positive".into() });
        assert_eq!((bad.status, bad.message.as_str()), (400, "max_tokens must be positive"));
    }
}
