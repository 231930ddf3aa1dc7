//! The embedding models' part of the wasi:nn contract. An embedding graph
//! (e.g. `all-minilm-l6-v2`) takes texts and returns one normalised vector per
//! text; it has no KV cache and no tokens to append.
//!
//! | input       | type, shape | meaning                                        |
//! |-------------|-------------|------------------------------------------------|
//! | [`TEXTS`]   | u8 `[len]`  | the texts, [`encode_texts`]' framing            |
//!
//! | output              | type, shape | meaning                               |
//! |---------------------|-------------|---------------------------------------|
//! | [`EMBEDDINGS`]      | f32 `[n, d]`| one vector per text, in order          |
//! | [`EMBED_TOKENS`]    | i32 `[1]`   | tokens the texts took, all together    |
//!
//! A language model's graph answers [`TEXTS`] with a `BadInput` error, and an
//! embedding graph answers everything else so.

/// Input tensor: the texts to embed (u8, [`encode_texts`]).
pub const TEXTS: &str = "texts";
/// Output tensor: the embeddings, `[n, d]` f32.
pub const EMBEDDINGS: &str = "embeddings";
/// Output tensor: the number of tokens the texts took (i32 `[1]`).
pub const EMBED_TOKENS: &str = "embed_tokens";

/// Frames texts for [`TEXTS`]: each as its byte length (u32, little-endian)
/// and its UTF-8 bytes.
pub fn encode_texts<S: AsRef<str>>(texts: &[S]) -> Vec<u8> {
    let mut out = Vec::with_capacity(texts.iter().map(|t| t.as_ref().len() + 4).sum());
    for t in texts {
        let b = t.as_ref().as_bytes();
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// Reads [`encode_texts`]' framing; `None` when it is cut short or a text is
/// not UTF-8.
pub fn decode_texts(mut bytes: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let text = rest.get(..len)?;
        out.push(String::from_utf8(text.to_vec()).ok()?);
        bytes = &rest[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_cut_frames_are_refused() {
        let texts = ["", "héllo", "日本語"];
        let bytes = encode_texts(&texts);
        assert_eq!(decode_texts(&bytes), Some(texts.iter().map(|s| s.to_string()).collect()));
        assert_eq!(decode_texts(&[]), Some(vec![]));
        assert_eq!(decode_texts(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_texts(&[1, 0, 0]), None);
        assert_eq!(decode_texts(&[1, 0, 0, 0, 0xff]), None);
    }
}
