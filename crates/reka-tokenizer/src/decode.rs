//! Turning token ids back into text, in one go or streamed token by token.

use crate::Tokenizer;

impl Tokenizer {
    /// Decodes `ids` to a string, replacing invalid UTF-8 with U+FFFD (one per
    /// maximal invalid sequence, as [`String::from_utf8_lossy`] does).
    /// With `skip_special`, control and unknown tokens (types 3 and 2) are
    /// dropped; user-defined tokens are ordinary text and always kept.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if !(skip_special && self.is_control(id)) {
                bytes.extend_from_slice(self.token_bytes(id));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Streaming detokeniser: push token ids one by one and get back the text that
/// became complete. A multi-byte UTF-8 character split across tokens is held
/// back until it is complete; bytes that can no longer form a valid character
/// become U+FFFD as soon as that is certain. The concatenation of all outputs
/// (including [`IncrementalDecoder::finish`]) equals [`Tokenizer::decode`] of
/// all ids.
#[derive(Debug, Clone, Default)]
pub struct IncrementalDecoder {
    skip_special: bool,
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    /// A decoder; `skip_special` drops control and unknown tokens as in [`Tokenizer::decode`].
    pub fn new(skip_special: bool) -> Self {
        Self {
            skip_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token and returns the text completed by it (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        if self.skip_special && tok.is_control(id) {
            return String::new();
        }
        self.pending.extend_from_slice(tok.token_bytes(id));
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // Invalid for good: replace and go on.
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = after.get(n..).unwrap_or_default();
                        }
                        // An incomplete character at the end: wait for more.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let drop = self.pending.len() - keep;
        self.pending.drain(..drop);
        out
    }

    /// Flushes whatever is pending (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
