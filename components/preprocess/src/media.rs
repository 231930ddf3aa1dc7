//! The media parts of chat messages, turned into what the model reads: images
//! into normalised tiles, videos into uniformly sampled frames, WAV audio into a
//! Whisper log-mel, each with the number of placeholder tokens its embeddings
//! take. The shapes come from the model's metadata; the work is `reka-media`'s.

use crate::fetch;
use crate::reka::inference::types::{ChatMessage, ContentPart, MediaKind};
use reka_media::{ImageSpec, Limits, MediaError};
use reka_protocol::{FrameSampling, ImageInfo, MediaInfo, ModelInfo, Tiling};

/// One media part, preprocessed.
pub struct Prepared {
    pub kind: MediaKind,
    pub tokens: u32,
    pub items: u32,
    pub data: Vec<f32>,
    /// Tokens written before and after its placeholders.
    pub wrap: Option<[u32; 2]>,
}

/// Text that stands for media item `i` in a rendered prompt. The two
/// characters are Unicode annotation marks, which user text cannot bring in
/// ([`scrub`] replaces them).
pub fn marker(i: usize) -> String {
    format!("{OPEN}{i}{CLOSE}")
}
const OPEN: char = '\u{FFF9}';
const CLOSE: char = '\u{FFFB}';

/// User text with the marker characters replaced.
pub fn scrub(text: &str) -> String {
    text.replace([OPEN, CLOSE], "\u{FFFD}")
}

/// Splits a rendered prompt at the markers: text pieces and media indices, in order.
pub fn split(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len_utf8()..];
        let Some(j) = after.find(CLOSE) else { break };
        let Ok(n) = after[..j].parse::<usize>() else { break };
        if i > 0 {
            out.push(Piece::Text(&rest[..i]));
        }
        out.push(Piece::Media(n));
        rest = &after[j + CLOSE.len_utf8()..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// A piece of a rendered prompt.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Media(usize),
}

fn spec(i: &ImageInfo, tiles: bool) -> ImageSpec {
    ImageSpec { size: i.size, mean: i.mean, std: i.std, max_tiles: if tiles { i.max_tiles } else { 1 } }
}

fn refused(info: &ModelInfo, what: &str) -> String {
    format!("the model `{}` does not read {what}; it reads {}", info.name, info.modalities().join(", "))
}

/// Refuses a request whose inline (`data:` URL) WAV audio has a header past the
/// limits, before the model's tokenizer is built (the costliest setup of a request):
/// a crafted header gets its 400 in about a millisecond. The length limit, which is
/// the model's, is checked later by [`prepare`], as is everything else.
pub fn precheck(messages: &[ChatMessage]) -> Result<(), String> {
    let limits = Limits { max_audio_seconds: f32::INFINITY, ..Limits::default() };
    for part in messages.iter().flat_map(|m| &m.content) {
        if let ContentPart::Audio(url) = part {
            if url.starts_with("data:") {
                let bytes = fetch::bytes(url, limits.max_bytes).map_err(|e| format!("audio: {e}"))?;
                reka_media::check_wav(&bytes, &limits).map_err(|e| format!("audio: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Fetches and preprocesses one media part (`None` for a text part);
/// `video_frames` is the request's frame count for videos.
pub fn prepare(info: &ModelInfo, part: &ContentPart, video_frames: Option<u32>) -> Result<Option<Prepared>, String> {
    let media: Option<&MediaInfo> = info.media.as_ref();
    let limits = Limits::default();
    let bad = |what: &str, e: MediaError| format!("{what}: {e}");
    Ok(Some(match part {
        ContentPart::Text(_) => return Ok(None),
        ContentPart::Image(url) => {
            let img = media.and_then(|m| m.image.as_ref()).ok_or_else(|| refused(info, "images"))?;
            let bytes = fetch::bytes(url, limits.max_bytes)?;
            let px = match img.tiling {
                Tiling::Grid => reka_media::image_tiles(&bytes, &spec(img, true), &limits),
                Tiling::Uhd { patch } => reka_media::uhd::image_tiles(&bytes, &spec(img, true), patch, &limits),
            }
            .map_err(|e| bad("image", e))?;
            Prepared { kind: MediaKind::Image, tokens: px.n as u32 * img.tokens_per_tile, items: px.n as u32, data: px.data, wrap: img.wrap }
        }
        ContentPart::Video(urls) => {
            let (img, vid) = media
                .and_then(|m| Some((m.image.as_ref()?, m.video.as_ref()?)))
                .ok_or_else(|| refused(info, "video"))?;
            let frames = match video_frames {
                Some(n) if n > vid.max_frames => {
                    return Err(format!("video: {n} frames asked (`media_io_kwargs.video.num_frames`); this model takes at most {}", vid.max_frames))
                }
                Some(n) => n as usize,
                None => vid.frames as usize,
            };
            type One = fn(&[u8], usize, &ImageSpec, &Limits) -> Result<reka_media::Pixels, MediaError>;
            type Many = fn(&[&[u8]], usize, &ImageSpec, &Limits) -> Result<reka_media::Pixels, MediaError>;
            let (one, many): (One, Many) = match vid.sampling {
                FrameSampling::AtMost => (reka_media::uhd::video_frames, reka_media::uhd::video_from_images),
                FrameSampling::Exact => (reka_media::video_frames, reka_media::video_from_images),
            };
            let s = spec(img, false);
            let px = match urls.as_slice() {
                [] => return Err("a video part needs a URL or a list of frame URLs".into()),
                [url] => one(&fetch::bytes(url, limits.max_bytes)?, frames, &s, &limits),
                urls => {
                    let all = urls.iter().map(|u| fetch::bytes(u, limits.max_bytes)).collect::<Result<Vec<_>, _>>()?;
                    let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
                    many(&refs, frames, &s, &limits)
                }
            }
            .map_err(|e| bad("video", e))?;
            Prepared { kind: MediaKind::Video, tokens: px.n as u32 * vid.tokens_per_frame, items: px.n as u32, data: px.data, wrap: vid.wrap }
        }
        ContentPart::Audio(url) => {
            let aud = media.and_then(|m| m.audio.as_ref()).ok_or_else(|| refused(info, "audio"))?;
            let limits = Limits { max_audio_seconds: aud.max_seconds, ..limits };
            let bytes = fetch::bytes(url, limits.max_bytes)?;
            let mel = reka_media::audio_features(&bytes, aud.n_mels as usize, &limits).map_err(|e| bad("audio", e))?;
            if mel.frames == 0 {
                return Err("audio: the WAV holds no samples".into());
            }
            let frames = mel.frames as u32;
            Prepared { kind: MediaKind::Audio, tokens: aud.tokens(frames), items: frames, data: mel.data, wrap: None }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_split_back_out_and_user_text_cannot_forge_them() {
        let text = format!("a{}b{}{}", marker(0), marker(1), marker(12));
        assert_eq!(split(&text), [Piece::Text("a"), Piece::Media(0), Piece::Text("b"), Piece::Media(1), Piece::Media(12)]);
        let forged = scrub(&format!("x{}y", marker(3)));
        assert_eq!(split(&forged), [Piece::Text(&forged)]);
    }
}
