//! The content parts of a chat message, in OpenAI's and Reka's forms:
//! `text`; `image_url` (a URL string, or `{"url": …}`); `video_url` (likewise)
//! or `video` (a list of frame URLs); `audio_url` (Reka) or `input_audio`
//! (OpenAI: `{"data": base64, "format": "wav"}`, turned into a data: URL).

use crate::error::ApiError;
use serde_json::Value;

/// One part of a message, media by URL.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(String),
    /// One animated file, or a list of still frames.
    Video(Vec<String>),
    Audio(String),
}

/// A URL given as a string or as `{"url": "…"}`.
fn url(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("url").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn frames(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(a) if !a.is_empty() => a.iter().map(|f| f.as_str().map(str::to_string)).collect(),
        other => url(Some(other)).map(|u| vec![u]),
    }
}

/// Reads `content` given as a list of parts (`p` names the message for errors).
pub fn parts(list: &[Value], p: &str) -> Result<Vec<Part>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(j, part)| {
            let at = format!("{p}.content[{j}]");
            let need = |field: &str, what: &str| ApiError::invalid(&at, format!("`{at}.{field}` must be {what}."));
            let ty = part
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid(&at, format!("`{at}.type` is missing.")))?;
            Ok(match ty {
                "text" => Part::Text(part.get("text").and_then(Value::as_str).ok_or_else(|| need("text", "a string"))?.into()),
                "image_url" => Part::Image(url(part.get("image_url")).ok_or_else(|| need("image_url", "a URL or {\"url\": …}"))?),
                "video_url" => Part::Video(vec![url(part.get("video_url")).ok_or_else(|| need("video_url", "a URL or {\"url\": …}"))?]),
                "video" => Part::Video(frames(part.get("video")).ok_or_else(|| need("video", "a URL or a list of frame URLs"))?),
                "audio_url" => Part::Audio(url(part.get("audio_url")).ok_or_else(|| need("audio_url", "a URL or {\"url\": …}"))?),
                "input_audio" => {
                    let a = part.get("input_audio");
                    let data = a.and_then(|a| a.get("data")).and_then(Value::as_str).ok_or_else(|| need("input_audio.data", "base64 audio"))?;
                    match a.and_then(|a| a.get("format")).and_then(Value::as_str) {
                        Some("wav") => Part::Audio(format!("data:audio/wav;base64,{data}")),
                        Some(f) => return Err(ApiError::invalid(&at, format!("`{at}.input_audio.format` {f:?} is not supported; send \"wav\"."))),
                        None => return Err(need("input_audio.format", "\"wav\"")),
                    }
                }
                other => return Err(ApiError::invalid(&at, format!("`{at}`: content parts of type {other:?} are not supported (text, image_url, video_url, video, audio_url, input_audio)."))),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_openai_and_reka_media_parts() {
        let list = json!([
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
            {"type": "image_url", "image_url": "https://x/b.png"},
            {"type": "video_url", "video_url": "https://x/v.gif"},
            {"type": "video", "video": ["data:image/png;base64,AA", "data:image/png;base64,AB"]},
            {"type": "audio_url", "audio_url": {"url": "https://x/a.wav"}},
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
        ]);
        let got = parts(list.as_array().map(Vec::as_slice).unwrap_or_default(), "messages[0]").map_err(|e| e.message);
        assert_eq!(
            got,
            Ok(vec![
                Part::Text("look".into()),
                Part::Image("https://x/a.png".into()),
                Part::Image("https://x/b.png".into()),
                Part::Video(vec!["https://x/v.gif".into()]),
                Part::Video(vec!["data:image/png;base64,AA".into(), "data:image/png;base64,AB".into()]),
                Part::Audio("https://x/a.wav".into()),
                Part::Audio("data:audio/wav;base64,UklG".into()),
            ])
        );
    }

    #[test]
    fn bad_parts_name_the_problem() {
        let err = |v: Value| parts(&[v], "messages[0]").err().map(|e| e.message).unwrap_or_default();
        assert!(err(json!({"type": "image_url"})).contains("image_url"));
        assert!(err(json!({"type": "input_audio", "input_audio": {"data": "AA", "format": "mp3"}})).contains("\"mp3\" is not supported"));
        assert!(err(json!({"type": "file", "file": {}})).contains("\"file\""));
        assert!(err(json!({"text": "x"})).contains("type` is missing"));
    }
}
