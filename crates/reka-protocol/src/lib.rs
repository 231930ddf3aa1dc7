//! The wasi:nn contract of this project, shared by the host backend and the guests.
//!
//! A wasi:nn *graph* is a loaded model (named by the runtime config); an
//! *execution context* is one generation session that owns its KV cache. `compute`
//! takes named tensors:
//!
//! | input            | type, shape     | meaning                                               |
//! |------------------|-----------------|-------------------------------------------------------|
//! | [`INPUT_IDS`]    | i32 `[n]`       | tokens to append to the context; returns [`LOGITS`]    |
//! | [`TOP_K`]        | i32 `[1]`       | with [`INPUT_IDS`]: return only the `k` best logits    |
//! | [`METADATA`]     | u8 `[0]`        | ask for the model's metadata; returns [`METADATA`]    |
//! | [`MEDIA`]        | i32 `[m, 4]`    | with [`INPUT_IDS`]: the media spans ([`MediaSpan`])   |
//! | [`PIXELS`]       | f32 `[n,3,s,s]` | the image tiles and video frames of the spans, in order |
//! | [`MEL`]          | f32 `[len]`     | the audio spans' log-mel, `[n_mels, frames]` each, back to back |
//!
//! and answers with
//!
//! | output        | type, shape        | meaning                                           |
//! |---------------|--------------------|---------------------------------------------------|
//! | [`LOGITS`]    | f32 `[vocab]`      | logits of the last appended position              |
//! | [`TOP_IDS`]   | i32 `[k]`          | with [`TOP_K`]: the `k` best ids, best first      |
//! | [`TOP_LOGITS`]| f32 `[k]`          | with [`TOP_K`]: their logits                      |
//! | [`METADATA`]  | u8 `[len]`         | [`ModelInfo`] as JSON                             |
//! | [`TOKENIZER`] | u8 `[len]`         | the tokenizer, `reka_tokenizer`'s compact form    |
//!
//! Log-probs, logit adjustments and several streams per context (a request's
//! prompts × `n`) use the tensors of the [`logprobs`] module.
//!
//! Errors come back as wasi:nn errors whose message starts with one of the
//! [`ErrorTag`] prefixes, so a guest can tell a full context from an engine failure.

use serde::{Deserialize, Serialize};

pub mod embed;
pub mod logprobs;
pub mod spin;

pub use reka_tokenizer::VocabSpec;

/// Input tensor next to [`INPUT_IDS`]: where media embeddings replace the
/// placeholder tokens (i32 `[m, 4]`, rows of [`MediaSpan::to_row`]).
pub const MEDIA: &str = "media";
/// Input tensor with [`MEDIA`]: normalised pixels of all image / video spans.
pub const PIXELS: &str = "pixels";
/// Input tensor with [`MEDIA`]: log-mel features of all audio spans.
pub const MEL: &str = "mel";

/// Input tensor: token ids to append (i32).
pub const INPUT_IDS: &str = "input_ids";
/// Output tensor: logits of the last position (f32).
pub const LOGITS: &str = "logits";
/// Input tensor next to [`INPUT_IDS`]: how many of the best logits to return
/// instead of all of them (i32 `[1]`); greedy decoding asks for one.
pub const TOP_K: &str = "top_k";
/// Output tensor with [`TOP_K`]: the best ids, best first (ties: lower id first).
pub const TOP_IDS: &str = "top_ids";
/// Output tensor with [`TOP_K`]: the logits of [`TOP_IDS`].
pub const TOP_LOGITS: &str = "top_logits";

/// The `k` best `(id, logit)` of `logits`, best first, ties to the lower id
/// (so that the first is what a first-maximum argmax picks).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    if k <= SMALL_K {
        // One pass keeping the k best in order: no copy of the vocabulary
        // (the engine asks this of every stream at every step). `better` is a
        // total order, so the result is the same as the sort below.
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
        // Once k are held, a later value enters only if its total-order key
        // is above the k-th best's (an equal one has the higher id). Whole
        // chunks below that are skipped with a branch-free test the compiler
        // vectorises; most of a vocabulary is.
        let mut floor = i32::MIN;
        for (c, chunk) in logits.chunks(CHUNK).enumerate() {
            if best.len() == k && !chunk.iter().fold(false, |any, &l| any | (order_key(l) > floor)) {
                continue;
            }
            for (j, &l) in chunk.iter().enumerate() {
                let cand = ((c * CHUNK + j) as u32, l);
                if best.len() == k && better(&cand, &best[k - 1]) != std::cmp::Ordering::Less {
                    continue;
                }
                let at = best.partition_point(|b| better(b, &cand) == std::cmp::Ordering::Less);
                best.insert(at, cand);
                best.truncate(k);
                if best.len() == k {
                    floor = order_key(best[k - 1].1);
                }
            }
        }
        return best;
    }
    let mut all: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, better);
        all.truncate(k);
    }
    all.sort_unstable_by(better);
    all
}

/// Up to this many, [`top_k`] keeps a sorted list in one pass.
const SMALL_K: usize = 32;
/// Logits [`top_k`] tests at once against the k-th best.
const CHUNK: usize = 32;

/// `x`'s place in [`f32::total_cmp`]'s order as an `i32` (the same bit trick):
/// `order_key(a) < order_key(b)` exactly when `a.total_cmp(&b)` is `Less`.
fn order_key(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}
/// Input and output tensor: the model metadata request / answer (u8, JSON).
pub const METADATA: &str = "metadata";
/// Output tensor next to [`METADATA`]: the ready-built tokenizer (u8, compact form).
pub const TOKENIZER: &str = "tokenizer";

/// What a guest needs to know about a model to build prompts and decode tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The graph name the host serves this model under.
    pub name: String,
    /// Architecture family, e.g. `llama`.
    pub architecture: String,
    /// Number of logits per position.
    pub vocab_size: u32,
    /// Maximum number of positions (prompt plus generated tokens).
    pub context_length: u32,
    /// Token prepended to every prompt, when the model wants one.
    pub bos_token_id: Option<u32>,
    /// Whether prompts start with BOS.
    pub add_bos: bool,
    /// End-of-sequence token.
    pub eos_token_id: Option<u32>,
    /// Extra tokens that end a turn (e.g. `<|im_end|>`, `<|endoftext|>`).
    pub stop_token_ids: Vec<u32>,
    /// Jinja chat template from the model's metadata, if it has one.
    pub chat_template: Option<String>,
    /// Strings that end generation for this model's chat format.
    pub stop_strings: Vec<String>,
    /// A chat format the host knows the model by, from its config rather than
    /// a template (`reka-edge`: a Yasa2 checkpoint); it wins over `chat_template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_format: Option<String>,
    /// What media the model reads, and how it wants them; `None` for text only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
}

impl ModelInfo {
    /// The input modalities, as Reka's and OpenRouter's model lists name them.
    pub fn modalities(&self) -> Vec<&'static str> {
        let mut m = vec!["text"];
        if let Some(media) = &self.media {
            if media.image.is_some() {
                m.push("image");
            }
            if media.video.is_some() {
                m.push("video");
            }
            if media.audio.is_some() {
                m.push("audio");
            }
        }
        m
    }
}

/// The media side of a multimodal model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The token id written at placeholder positions (its embedding is replaced).
    pub placeholder_id: u32,
    pub image: Option<ImageInfo>,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

/// How a model wants its images: square tiles of `size`, normalised per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Tiles of a large image beside its whole view.
    pub max_tiles: u32,
    /// Placeholder tokens per tile.
    pub tokens_per_tile: u32,
    /// How an image is cut into tiles.
    #[serde(default)]
    pub tiling: Tiling,
    /// Tokens written before and after an image's placeholders (Reka Edge:
    /// `<image>`, `</image>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap: Option<[u32; 2]>,
}

/// How an image becomes tiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Tiling {
    /// A squashed whole-image tile, then a grid of up to `max_tiles`
    /// (`reka_media::image_tiles`).
    #[default]
    Grid,
    /// Reka Edge's LLaVA-UHD tiling with sides rounded to `patch`
    /// (`reka_media::uhd`): grid cells first, the whole image last.
    Uhd { patch: u32 },
}

/// Video: frames sampled uniformly, each read like an image (one tile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Frames sampled when the request does not say.
    pub frames: u32,
    /// Placeholder tokens per frame.
    pub tokens_per_frame: u32,
    /// How frames are picked.
    #[serde(default)]
    pub sampling: FrameSampling,
    /// Most frames a request may ask for.
    #[serde(default = "default_max_frames")]
    pub max_frames: u32,
    /// Tokens written before and after a video's placeholders (Reka Edge:
    /// `<video>`, `</video>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap: Option<[u32; 2]>,
}

fn default_max_frames() -> u32 {
    64
}

/// How a video's frames are picked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrameSampling {
    /// Exactly `frames`, rounded uniform positions, repeated when the video is
    /// shorter (`reka_media::video_frames`).
    #[default]
    Exact,
    /// At most `frames`: `floor(linspace(0, n − 1, frames))`, or every frame of
    /// a shorter video (Reka's plugin, `reka_media::uhd`).
    AtMost,
}

/// Audio: 16 kHz log-mel, as Whisper computes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    pub n_mels: u32,
    /// Longest accepted audio.
    pub max_seconds: f32,
    /// Log-mel frames (10 ms each) per placeholder token.
    pub frames_per_token: u32,
}

impl AudioInfo {
    /// Placeholder tokens for `frames` log-mel frames.
    pub fn tokens(&self, frames: u32) -> u32 {
        frames.div_ceil(self.frames_per_token.max(1))
    }
}

/// What kind of media a span holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
}

/// One media item of a prompt: which placeholder tokens its embeddings take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSpan {
    pub kind: MediaKind,
    /// Index of its first placeholder in this step's [`INPUT_IDS`].
    pub position: u32,
    pub tokens: u32,
    /// Image tiles or video frames in [`PIXELS`]; log-mel frames in [`MEL`].
    pub items: u32,
}

impl MediaSpan {
    /// The span as one row of the [`MEDIA`] tensor.
    pub fn to_row(&self) -> [i32; 4] {
        let kind = match self.kind {
            MediaKind::Image => 0,
            MediaKind::Video => 1,
            MediaKind::Audio => 2,
        };
        [kind, self.position as i32, self.tokens as i32, self.items as i32]
    }

    /// Reads the rows of a [`MEDIA`] tensor.
    pub fn from_rows(v: &[i32]) -> Result<Vec<MediaSpan>, String> {
        if !v.len().is_multiple_of(4) {
            return Err(format!("{MEDIA} must be [m, 4] i32, got {} values", v.len()));
        }
        v.chunks_exact(4)
            .map(|r| {
                let kind = match r[0] {
                    0 => MediaKind::Image,
                    1 => MediaKind::Video,
                    2 => MediaKind::Audio,
                    k => return Err(format!("unknown media kind {k}")),
                };
                let n = |x: i32, what: &str| u32::try_from(x).map_err(|_| format!("media {what} {x} is negative"));
                Ok(MediaSpan { kind, position: n(r[1], "position")?, tokens: n(r[2], "tokens")?, items: n(r[3], "items")? })
            })
            .collect()
    }
}

/// Prefixes of wasi:nn error messages that carry a meaning for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTag {
    /// The context cannot take the appended tokens.
    ContextFull,
    /// A tensor has the wrong name, type or shape.
    BadInput,
    /// The KV memory budget cannot take the session now (HTTP 503).
    Overloaded,
    /// Too many sessions are already waiting for KV memory (HTTP 429).
    Busy,
}

impl ErrorTag {
    /// The message prefix, e.g. `context-full: `.
    pub fn prefix(self) -> &'static str {
        match self {
            ErrorTag::ContextFull => "context-full: ",
            ErrorTag::BadInput => "bad-input: ",
            ErrorTag::Overloaded => "overloaded: ",
            ErrorTag::Busy => "busy: ",
        }
    }

    /// Which tag, if any, starts `message`.
    pub fn of(message: &str) -> Option<ErrorTag> {
        [ErrorTag::ContextFull, ErrorTag::BadInput, ErrorTag::Overloaded, ErrorTag::Busy]
            .into_iter()
            .find(|t| message.starts_with(t.prefix()) || message.contains(t.prefix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass small-k path and the select-and-sort path agree on
    /// random logits with many ties, infinities and NaNs.
    #[test]
    fn top_k_paths_agree() {
        let mut x = 12345u64;
        let mut next = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        // NaNs (the greatest in total order), infinities, many ties.
        let specials: Vec<f32> = (0..5000)
            .map(|i| match i % 97 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                _ => (next() % 50) as f32 * 0.5,
            })
            .collect();
        // Ties across chunk edges, both zeros, a negative NaN, no positive one:
        // the k-th best moves while chunks are skipped.
        let zeros: Vec<f32> = (0..4999)
            .map(|i| match next() % 7 {
                0 => 0.0,
                1 => -0.0,
                2 if i == 77 => -f32::NAN,
                _ => (next() % 9) as f32 - 8.0,
            })
            .collect();
        // Rising: every chunk holds a new best.
        let rising: Vec<f32> = (0..3001).map(|i| i as f32 * 0.25 - 100.0).collect();
        let fine: Vec<f32> = (0..49152).map(|_| next() as f32 / 2f32.powi(31) * 20.0 - 10.0).collect();
        for logits in [&specials, &zeros, &rising, &fine] {
            let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            let mut all: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
            all.sort_by(better);
            for k in [1, 2, 5, 20, 31, 32, 33, 100] {
                let a = top_k(logits, k);
                assert_eq!(a.len(), k);
                for (p, q) in a.iter().zip(&all) {
                    assert!(p.0 == q.0 && p.1.to_bits() == q.1.to_bits(), "k={k}: {p:?} vs {q:?}");
                }
            }
        }
        assert_eq!(top_k(&[1.0, 3.0, 3.0], 1), vec![(1, 3.0)]);
        assert_eq!(top_k(&[-0.0, 0.0], 1)[0].1.to_bits(), 0.0f32.to_bits());
    }

    #[test]
    fn order_keys_follow_total_order() {
        let v = [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1.0, -1.0, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, 1e-45, -1e-45, f32::MAX, f32::MIN];
        for a in v {
            for b in v {
                assert_eq!(order_key(a).cmp(&order_key(b)), a.total_cmp(&b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn top_k_is_sorted_and_breaks_ties_to_the_lower_id() {
        let l = [0.5, 2.0, -1.0, 2.0, 1.0];
        assert_eq!(top_k(&l, 3), vec![(1, 2.0), (3, 2.0), (4, 1.0)]);
        assert_eq!(top_k(&l, 1), vec![(1, 2.0)]);
        assert_eq!(top_k(&l, 9).len(), 5);
        assert!(top_k(&l, 0).is_empty());
    }

    #[test]
    fn media_spans_round_trip_and_bad_rows_are_refused() {
        let spans = [
            MediaSpan { kind: MediaKind::Image, position: 3, tokens: 64, items: 1 },
            MediaSpan { kind: MediaKind::Audio, position: 70, tokens: 25, items: 200 },
        ];
        let rows: Vec<i32> = spans.iter().flat_map(|s| s.to_row()).collect();
        assert_eq!(MediaSpan::from_rows(&rows), Ok(spans.to_vec()));
        assert!(MediaSpan::from_rows(&[0, 1, 2]).is_err());
        assert!(MediaSpan::from_rows(&[7, 0, 1, 1]).is_err());
        assert!(MediaSpan::from_rows(&[0, -1, 1, 1]).is_err());
        let a = AudioInfo { n_mels: 80, max_seconds: 30.0, frames_per_token: 8 };
        assert_eq!((a.tokens(8), a.tokens(9), a.tokens(3000)), (1, 2, 375));
    }

    #[test]
    fn error_tags_are_found_in_messages() {
        let msg = format!("{}position 9000 past 8192", ErrorTag::ContextFull.prefix());
        assert_eq!(ErrorTag::of(&msg), Some(ErrorTag::ContextFull));
        assert_eq!(ErrorTag::of("engine failed"), None);
    }
}
