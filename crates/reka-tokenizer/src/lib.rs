//! `reka-tokenizer`: a pure-Rust byte-level BPE tokenizer (GPT-2 style) built
//! from the vocabulary a GGUF file stores (`tokenizer.ggml.*` keys), matching
//! llama.cpp's BPE tokenizer.
//!
//! No I/O and no C dependencies, so it builds for `wasm32-wasip2` too. The
//! caller reads the GGUF metadata into a [`VocabSpec`] and builds a
//! [`Tokenizer`] from it.
//!
//! Supported: `tokenizer.ggml.model = "gpt2"` with the pre-tokenisers
//! `gpt2` (also used for unknown `pre` values), `smollm` and `llama-bpe`
//! (Llama 3, also `llama3`, `llama-v3`, `falcon3`, `pixtral`).

mod bpe;
mod bytes;
mod compact;
mod decode;
mod index;
mod pretokenize;
mod special;
mod tiktoken;

pub use tiktoken::vocab_from_ranks;

pub use decode::IncrementalDecoder;
pub use pretokenize::PreTokenizer;

use index::{Arena, PairIndex, StrIndex};
use special::{Fragment, SpecialMatcher};

/// Token type: normal text.
pub const TOKEN_NORMAL: i32 = 1;
/// Token type: the unknown token.
pub const TOKEN_UNKNOWN: i32 = 2;
/// Token type: control token (e.g. `<|im_start|>`).
pub const TOKEN_CONTROL: i32 = 3;
/// Token type: user-defined token.
pub const TOKEN_USER_DEFINED: i32 = 4;
/// Token type: unused.
pub const TOKEN_UNUSED: i32 = 5;
/// Token type: byte token.
pub const TOKEN_BYTE: i32 = 6;

/// The vocabulary as a GGUF file stores it (`tokenizer.ggml.*` keys).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VocabSpec {
    /// `tokenizer.ggml.model`, e.g. `"gpt2"`.
    pub model: String,
    /// `tokenizer.ggml.pre`, e.g. `"smollm"`, `"gpt2"`, `"llama-bpe"`; unknown values behave as `"gpt2"`.
    pub pre: String,
    /// `tokenizer.ggml.tokens` (byte-to-unicode mapped strings, GPT-2 style).
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`, each `"left right"`.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte. May be empty (all normal).
    pub token_types: Vec<i32>,
}

/// Why a [`VocabSpec`] cannot be turned into a [`Tokenizer`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `tokenizer.ggml.model` is not a byte-level BPE model.
    #[error("unsupported tokenizer model {0:?} (only \"gpt2\" byte-level BPE is supported)")]
    UnsupportedModel(String),
    /// The vocabulary has no tokens.
    #[error("the vocabulary is empty")]
    EmptyVocab,
    /// More tokens than fit in a `u32` id.
    #[error("too many tokens: {0}")]
    TooManyTokens(usize),
    /// `token_types` is non-empty and its length differs from `tokens`.
    #[error("{types} token types for {tokens} tokens")]
    LengthMismatch {
        /// Number of tokens.
        tokens: usize,
        /// Number of token types.
        types: usize,
    },
    /// A compact tokenizer blob is malformed.
    #[error("bad compact tokenizer: {0}")]
    BadCompact(String),
    /// A merge line is not of the form `"left right"`.
    #[error("merge {index} is malformed: {line:?}")]
    BadMerge {
        /// Position in `merges`.
        index: usize,
        /// The line.
        line: String,
    },
}

/// A byte-level BPE tokenizer. Cheap to share (`&self` everywhere); build it once.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    pre: PreTokenizer,
    /// Llama 3 style: a piece that is a whole token is taken without merging.
    ignore_merges: bool,
    /// Token texts as stored in the vocabulary.
    texts: Arena,
    text_index: StrIndex,
    /// The bytes each token stands for.
    bytes: Arena,
    types: Vec<i32>,
    /// Token id of the single-character token for each byte ([`bpe::MISSING`] if absent).
    byte_ids: [u32; 256],
    merges: PairIndex,
    specials: SpecialMatcher,
}

impl Tokenizer {
    /// Builds the tokenizer. Merges whose parts or result are not tokens are
    /// ignored (they could never produce a token id).
    pub fn new(spec: &VocabSpec) -> Result<Self, Error> {
        if spec.model != "gpt2" {
            return Err(Error::UnsupportedModel(spec.model.clone()));
        }
        let n = spec.tokens.len();
        if n == 0 {
            return Err(Error::EmptyVocab);
        }
        if n >= u32::MAX as usize {
            return Err(Error::TooManyTokens(n));
        }
        if !spec.token_types.is_empty() && spec.token_types.len() != n {
            return Err(Error::LengthMismatch {
                tokens: n,
                types: spec.token_types.len(),
            });
        }
        let types = if spec.token_types.is_empty() {
            vec![TOKEN_NORMAL; n]
        } else {
            spec.token_types.clone()
        };

        let total: usize = spec.tokens.iter().map(String::len).sum();
        let mut texts = Arena::with_capacity(n, total);
        let mut bytes = Arena::with_capacity(n, total);
        let mut buf = Vec::with_capacity(64);
        for (text, &ty) in spec.tokens.iter().zip(&types) {
            texts.push(text.as_bytes());
            buf.clear();
            if is_raw_text_type(ty) {
                buf.extend_from_slice(text.as_bytes());
            } else {
                bytes::decode_mapped(text, &mut buf);
            }
            bytes.push(&buf);
        }
        let text_index = StrIndex::build(&texts);

        let mut byte_ids = [bpe::MISSING; 256];
        for (b, slot) in (0..=255u8).zip(byte_ids.iter_mut()) {
            let mut s = [0u8; 4];
            let key = bytes::byte_to_char(b).encode_utf8(&mut s);
            *slot = text_index
                .get(&texts, key.as_bytes())
                .unwrap_or(bpe::MISSING);
        }

        let mut merges = PairIndex::with_capacity(spec.merges.len());
        let mut joined = Vec::with_capacity(64);
        for (rank, line) in spec.merges.iter().enumerate() {
            // As llama.cpp: split at the first space after the first byte.
            let split = line
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|p| p + 1);
            let Some(split) = split else {
                return Err(Error::BadMerge {
                    index: rank,
                    line: line.clone(),
                });
            };
            let (left, right) = (&line[..split], &line[split + 1..]);
            let (Some(l), Some(r)) = (
                text_index.get(&texts, left.as_bytes()),
                text_index.get(&texts, right.as_bytes()),
            ) else {
                continue;
            };
            joined.clear();
            joined.extend_from_slice(left.as_bytes());
            joined.extend_from_slice(right.as_bytes());
            if let Some(m) = text_index.get(&texts, &joined) {
                merges.insert_first(l, r, u32::try_from(rank).unwrap_or(u32::MAX), m);
            }
        }

        Ok(Self::assemble(
            PreTokenizer::from_gguf_name(&spec.pre),
            texts,
            text_index,
            bytes,
            types,
            byte_ids,
            merges,
        ))
    }

    /// Puts the parts together and derives what follows from them: the special
    /// token matcher (control, unknown and user-defined tokens) and Llama 3's
    /// whole-piece rule. Shared by [`Tokenizer::new`] and the compact loader.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        pre: PreTokenizer,
        texts: Arena,
        text_index: StrIndex,
        bytes: Arena,
        types: Vec<i32>,
        byte_ids: [u32; 256],
        merges: PairIndex,
    ) -> Self {
        let specials = SpecialMatcher::new(types.iter().enumerate().filter_map(|(id, &ty)| {
            let always = ty == TOKEN_USER_DEFINED;
            let parsed = always || ty == TOKEN_CONTROL || ty == TOKEN_UNKNOWN;
            let text = std::str::from_utf8(texts.get(id)).ok()?;
            parsed.then(|| (u32::try_from(id).unwrap_or(u32::MAX), text, always))
        }));
        Self {
            pre,
            ignore_merges: pre == PreTokenizer::Llama3,
            texts,
            text_index,
            bytes,
            types,
            byte_ids,
            merges,
            specials,
        }
    }

    /// The pre-tokeniser in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// Encodes text (no BOS is added).
    ///
    /// With `parse_special = true`, occurrences of control, user-defined and
    /// unknown token strings (e.g. `"<|im_start|>"`) become those single
    /// tokens, longest token first. Otherwise they are tokenised as plain
    /// text — except user-defined tokens (type 4), which llama.cpp always
    /// matches, as does this tokenizer.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut scratch = bpe::Scratch::default();
        let mut initial = Vec::new();
        let mut mapped = String::new();
        for frag in self.specials.partition(text, parse_special) {
            let range = match frag {
                Fragment::Token(id) => {
                    out.push(id);
                    continue;
                }
                Fragment::Text(range) => range,
            };
            let chunk = &text[range];
            for piece in self.pre.split(chunk) {
                let piece = &chunk.as_bytes()[piece];
                if self.ignore_merges {
                    mapped.clear();
                    bytes::encode_mapped(piece, &mut mapped);
                    if let Some(id) = self.text_index.get(&self.texts, mapped.as_bytes()) {
                        out.push(id);
                        continue;
                    }
                }
                initial.clear();
                initial.extend(piece.iter().map(|&b| self.byte_ids[usize::from(b)]));
                bpe::merge(&self.merges, &initial, &mut scratch, &mut out);
            }
        }
        out
    }

    /// The raw bytes a token stands for: the byte-level text decoded for
    /// normal tokens, the text itself (UTF-8) for control, user-defined and
    /// unknown tokens. Unknown id → empty.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize)
    }

    /// The token's text exactly as the vocabulary stores it (`None` for an unknown id).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        if (id as usize) < self.texts.len() {
            std::str::from_utf8(self.texts.get(id as usize)).ok()
        } else {
            None
        }
    }

    /// The token's type (see the `TOKEN_*` constants); `None` for an unknown id.
    pub fn token_type(&self, id: u32) -> Option<i32> {
        self.types.get(id as usize).copied()
    }

    /// Whether the token is special: a control (type 3) or user-defined (type 4) token.
    pub fn is_special(&self, id: u32) -> bool {
        matches!(
            self.token_type(id),
            Some(TOKEN_CONTROL | TOKEN_USER_DEFINED)
        )
    }

    /// Whether the token is dropped by `skip_special` when decoding: control (3) or unknown (2).
    pub fn is_control(&self, id: u32) -> bool {
        matches!(self.token_type(id), Some(TOKEN_CONTROL | TOKEN_UNKNOWN))
    }

    /// Exact lookup of a token string as the vocabulary stores it (for
    /// special tokens like `"<|im_end|>"`; normal tokens are in byte-level form,
    /// e.g. `"Ġthe"`).
    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.text_index.get(&self.texts, text.as_bytes())
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.texts.len()
    }
}

/// Token types whose text is stored as-is rather than in byte-level form.
fn is_raw_text_type(ty: i32) -> bool {
    matches!(ty, TOKEN_CONTROL | TOKEN_USER_DEFINED | TOKEN_UNKNOWN)
}
