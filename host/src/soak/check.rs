//! Whether an answer is well-formed: error bodies, refusals under load, whole
//! completions and event streams.

use super::wire::{read_body, read_chunk, Conn, Head};
use super::{Kind, Outcome};
use serde_json::Value;

/// An OpenAI-style error body: `{"error": {"message": "...", "type": "..."}}`.
pub fn error_body(body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the error body is not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
    match (v["error"]["message"].as_str(), v["error"]["type"].as_str()) {
        (Some(m), Some(_)) if !m.is_empty() => Ok(()),
        _ => Err(format!("not an OpenAI error body: {v}")),
    }
}

/// A refusal under load: 429 / 503 with `retry-after` and a JSON error body.
pub fn refusal(head: &Head, body: &[u8]) -> Outcome {
    if head.header("retry-after").is_none() {
        return Outcome::Malformed(format!("{} without retry-after", head.status));
    }
    match error_body(body) {
        Ok(()) => Outcome::Refused,
        Err(e) => Outcome::Malformed(e),
    }
}

/// Checks a non-streaming answer.
pub fn check_whole(kind: Kind, max_tokens: u32, head: &Head, body: &[u8]) -> Outcome {
    match head.status {
        200 => {}
        429 | 503 => return refusal(head, body),
        s => return Outcome::Malformed(format!("status {s}: {}", String::from_utf8_lossy(body))),
    }
    if !head.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Outcome::Malformed(format!("content-type {:?}", head.header("content-type")));
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Outcome::Malformed(format!("body is not JSON ({e})")),
    };
    let choice = &v["choices"][0];
    let text = if kind == Kind::Completion { &choice["text"] } else { &choice["message"]["content"] };
    let n = v["usage"]["completion_tokens"].as_u64();
    let finish = choice["finish_reason"].as_str();
    match (text.is_string(), n, finish) {
        (true, Some(n), Some("stop" | "length")) if (1..=u64::from(max_tokens)).contains(&n) => Outcome::Answered,
        _ => Outcome::Malformed(format!("not a complete completion: {v}")),
    }
}

/// Reads and checks an SSE stream; with `stop_after` events, disconnects then.
pub async fn check_stream(r: &mut Conn, head: &Head, stop_after: Option<u64>) -> Outcome {
    match head.status {
        200 => {}
        429 | 503 => {
            return match read_body(r, head).await {
                Ok(b) => refusal(head, &b),
                Err(e) => Outcome::Malformed(e),
            }
        }
        s => return Outcome::Malformed(format!("status {s}")),
    }
    if !head.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")) || !head.chunked() {
        return Outcome::Malformed(format!("a stream with content-type {:?}, not chunked", head.header("content-type")));
    }
    let mut pending = Vec::new();
    let (mut events, mut done, mut finished, mut errored) = (0u64, false, false, false);
    loop {
        let chunk = match read_chunk(r).await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Outcome::Malformed(e),
        };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let Ok(text) = std::str::from_utf8(&event[..end]) else {
                return Outcome::Malformed("an event is not UTF-8".into());
            };
            if done {
                return Outcome::Malformed(format!("an event after [DONE]: {text:?}"));
            }
            let Some(data) = text.strip_prefix("data: ") else {
                return Outcome::Malformed(format!("an event without data: {text:?}"));
            };
            if data == "[DONE]" {
                done = true;
                continue;
            }
            let v: Value = match serde_json::from_str(data) {
                Ok(v) => v,
                Err(e) => return Outcome::Malformed(format!("an event is not JSON ({e}): {data:?}")),
            };
            if v.get("error").is_some() {
                if let Err(e) = error_body(data.as_bytes()) {
                    return Outcome::Malformed(e);
                }
                errored = true;
            } else if v["choices"][0]["finish_reason"].is_string() {
                finished = true;
            }
            events += 1;
            if stop_after.is_some_and(|n| events >= n) && !finished {
                return Outcome::Disconnected;
            }
        }
    }
    match (pending.is_empty(), done, finished, errored) {
        (false, ..) => Outcome::Malformed("the stream ends inside an event".into()),
        (_, false, ..) => Outcome::Malformed("the stream ends without data: [DONE]".into()),
        (_, _, _, true) => Outcome::Refused,
        (_, _, true, _) => Outcome::Answered,
        _ => Outcome::Malformed("the stream has no finish_reason".into()),
    }
}

