//! API errors with their HTTP status and OpenAI's error body:
//! `{"error": {"message", "type", "param", "code"}}`.

use crate::reka::inference::types::{Error as WitError, ErrorKind};
use serde_json::{json, Value};

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
            ErrorKind::Internal => ApiError {
                status: 500,
                kind: "server_error",
                message: e.message,
                param: None,
                code: None,
            },
        }
    }
}
