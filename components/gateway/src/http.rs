//! wasi:http plumbing: reading the request body with a size limit, answering with
//! JSON, and a server-sent-events writer that flushes each event as it is made.

use crate::error::ApiError;
use serde_json::Value;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{OutputStream, StreamError};

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 << 20;

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes.
pub fn read_body(req: &IncomingRequest) -> Result<Vec<u8>, ApiError> {
    let body = req
        .consume()
        .map_err(|_| ApiError::bad_body("The request body could not be read."))?;
    let mut data = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|_| ApiError::bad_body("The request body could not be read."))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    data.extend_from_slice(&chunk);
                    if data.len() > MAX_BODY {
                        return Err(ApiError::too_large(MAX_BODY));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(ApiError::bad_body(format!(
                        "Reading the request body failed: {}",
                        e.to_debug_string()
                    )))
                }
            }
        }
    }
    Ok(data)
}

fn headers(content_type: &str, extra: &[(&str, &str)]) -> Fields {
    let mut list: Vec<(String, Vec<u8>)> = vec![("content-type".into(), content_type.as_bytes().to_vec())];
    list.extend(extra.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())));
    Fields::from_list(&list).unwrap_or_else(|_| Fields::new())
}

/// An open response body that text can be written to as it is made.
pub struct BodyWriter {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl BodyWriter {
    /// Sends the head (status and headers) and opens the body.
    pub fn start(out: ResponseOutparam, status: u16, content_type: &str, extra: &[(&str, &str)]) -> Result<Self, String> {
        let resp = OutgoingResponse::new(headers(content_type, extra));
        resp.set_status_code(status).map_err(|_| format!("bad status {status}"))?;
        let body = resp.body().map_err(|_| "response body taken twice".to_string())?;
        ResponseOutparam::set(out, Ok(resp));
        let stream = body.write().map_err(|_| "response stream taken twice".to_string())?;
        Ok(BodyWriter {
            stream: Some(stream),
            body: Some(body),
        })
    }

    /// Writes and flushes `data`; fails once the client has gone.
    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        let stream = self.stream.as_ref().ok_or("body already finished")?;
        for piece in data.chunks(4096) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(|e| format!("client went away: {e:?}"))?;
        }
        Ok(())
    }

    /// Writes one server-sent event `data: <json>`.
    pub fn event(&mut self, v: &Value) -> Result<(), String> {
        self.write(format!("data: {v}\n\n").as_bytes())
    }

    /// Ends the body.
    pub fn finish(mut self) -> Result<(), String> {
        drop(self.stream.take());
        if let Some(body) = self.body.take() {
            OutgoingBody::finish(body, None).map_err(|e| format!("finishing body: {e:?}"))?;
        }
        Ok(())
    }
}

/// Answers with a JSON body (floats of an `f32` written as `f32`s: shortest).
pub fn json<T: serde::Serialize + ?Sized>(out: ResponseOutparam, status: u16, v: &T) -> Result<(), String> {
    let body = serde_json::to_vec(v).map_err(|e| format!("writing JSON: {e}"))?;
    let mut w = BodyWriter::start(out, status, "application/json", &[])?;
    w.write(&body)?;
    w.finish()
}

/// Answers with an OpenAI-style error.
/// Overload answers (429, 503) tell the client when to try again.
pub fn error(out: ResponseOutparam, e: ApiError) -> Result<(), String> {
    let retry: &[(&str, &str)] = if matches!(e.status, 429 | 503) { &[("retry-after", "1")] } else { &[] };
    let mut w = BodyWriter::start(out, e.status, "application/json", retry)?;
    w.write(e.body().to_string().as_bytes())?;
    w.finish()
}
