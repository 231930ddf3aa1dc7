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
//! Errors come back as wasi:nn errors whose message starts with one of the
//! [`ErrorTag`] prefixes, so a guest can tell a full context from an engine failure.

use serde::{Deserialize, Serialize};

pub use reka_tokenizer::VocabSpec;

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
    let mut all: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, better);
        all.truncate(k);
    }
    all.sort_unstable_by(better);
    all
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

    #[test]
    fn top_k_is_sorted_and_breaks_ties_to_the_lower_id() {
        let l = [0.5, 2.0, -1.0, 2.0, 1.0];
        assert_eq!(top_k(&l, 3), vec![(1, 2.0), (3, 2.0), (4, 1.0)]);
        assert_eq!(top_k(&l, 1), vec![(1, 2.0)]);
        assert_eq!(top_k(&l, 9).len(), 5);
        assert!(top_k(&l, 0).is_empty());
    }

    #[test]
    fn error_tags_are_found_in_messages() {
        let msg = format!("{}position 9000 past 8192", ErrorTag::ContextFull.prefix());
        assert_eq!(ErrorTag::of(&msg), Some(ErrorTag::ContextFull));
        assert_eq!(ErrorTag::of("engine failed"), None);
    }
}
