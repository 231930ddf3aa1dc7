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
        // The type first: validating every token's text as UTF-8 was a third
        // of building a tokenizer, which each request's guest does.
        let specials = SpecialMatcher::new(types.iter().enumerate().filter_map(|(id, &ty)| {
            let always = ty == TOKEN_USER_DEFINED;
            if !(always || ty == TOKEN_CONTROL || ty == TOKEN_UNKNOWN) {
                return None;
            }
            let text = std::str::from_utf8(texts.get(id)).ok()?;
            Some((u32::try_from(id).unwrap_or(u32::MAX), text, always))
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
        let mut enc = Encoder::new(text.len());
        for frag in self.specials.partition(text, parse_special) {
            match frag {
                Fragment::Token(id) => enc.out.push(id),
                Fragment::Text(range) => enc.text(self, &text[range]),
            }
        }
        enc.out
    }

    /// `text` made literal for [`Tokenizer::encode_marked`]: each special
    /// token string that `encode(text, false)` would read as text (control
    /// and unknown tokens) is put between [`LITERAL_START`] and
    /// [`LITERAL_END`]. Those two characters, where `text` has them, are
    /// replaced by U+FFFD first, so that text cannot place or cancel marks.
    /// Text without special token strings comes back unchanged (but for
    /// that replacement).
    pub fn mark_literal(&self, text: &str) -> String {
        let clean = if text.contains([LITERAL_START, LITERAL_END]) {
            text.replace([LITERAL_START, LITERAL_END], "\u{FFFD}")
        } else {
            text.to_string()
        };
        let spans = self.specials.parse_only_spans(&clean);
        if spans.is_empty() {
            return clean;
        }
        let mut out = String::with_capacity(clean.len() + spans.len() * 6);
        let mut pos = 0;
        for r in spans {
            out.push_str(&clean[pos..r.start]);
            out.push(LITERAL_START);
            out.push_str(&clean[r.clone()]);
            out.push(LITERAL_END);
            pos = r.end;
        }
        out.push_str(&clean[pos..]);
        out
    }

    /// Encodes a prompt written from a template and request text: special
    /// token strings become special tokens (as `encode(text, true)`) except
    /// where they overlap a stretch from a [`LITERAL_START`] to the next
    /// [`LITERAL_END`] (what [`Tokenizer::mark_literal`] wrote), which is
    /// read as text; the marks themselves are dropped. Without marks this is
    /// exactly `encode(text, true)`.
    pub fn encode_marked(&self, text: &str) -> Vec<u32> {
        if !text.contains([LITERAL_START, LITERAL_END]) {
            return self.encode(text, true);
        }
        let literal = literal_ranges(text);
        let mut enc = Encoder::new(text.len());
        let mut unmarked = String::new();
        for frag in self.specials.partition_except(text, &literal) {
            match frag {
                Fragment::Token(id) => enc.out.push(id),
                Fragment::Text(range) => {
                    unmarked.clear();
                    unmarked.extend(text[range].chars().filter(|&c| c != LITERAL_START && c != LITERAL_END));
                    enc.text(self, &unmarked);
                }
            }
        }
        enc.out
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

/// Opens a stretch of request text in a prompt for
/// [`Tokenizer::encode_marked`] (a Unicode noncharacter, reserved for such
/// internal use).
pub const LITERAL_START: char = '\u{FDD0}';
/// Closes the stretch that [`LITERAL_START`] opened.
pub const LITERAL_END: char = '\u{FDD1}';

/// The byte ranges of `text` from each [`LITERAL_START`] to the next
/// [`LITERAL_END`], marks included; a start with no end, or followed by
/// another start first, opens nothing. Sorted and disjoint.
fn literal_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut open = None;
    for (i, c) in text.char_indices() {
        if c == LITERAL_START {
            open = Some(i);
        } else if c == LITERAL_END {
            if let Some(start) = open.take() {
                out.push(start..i + c.len_utf8());
            }
        }
    }
    out
}

/// The BPE stage of encoding: plain text in, token ids out, with its
/// scratch buffers kept across calls.
struct Encoder {
    out: Vec<u32>,
    scratch: bpe::Scratch,
    initial: Vec<u32>,
    mapped: String,
}

impl Encoder {
    fn new(text_len: usize) -> Self {
        Self {
            out: Vec::with_capacity(text_len / 3 + 1),
            scratch: bpe::Scratch::default(),
            initial: Vec::new(),
            mapped: String::new(),
        }
    }

    /// Pre-tokenises `chunk` (text with no special tokens left to find) and
    /// merges each piece.
    fn text(&mut self, tok: &Tokenizer, chunk: &str) {
        for piece in tok.pre.split(chunk) {
            let piece = &chunk.as_bytes()[piece];
            if tok.ignore_merges {
                self.mapped.clear();
                bytes::encode_mapped(piece, &mut self.mapped);
                if let Some(id) = tok.text_index.get(&tok.texts, self.mapped.as_bytes()) {
                    self.out.push(id);
                    continue;
                }
            }
            self.initial.clear();
            self.initial.extend(piece.iter().map(|&b| tok.byte_ids[usize::from(b)]));
            bpe::merge(&tok.merges, &self.initial, &mut self.scratch, &mut self.out);
        }
    }
}

/// Token types whose text is stored as-is rather than in byte-level form.
fn is_raw_text_type(ty: i32) -> bool {
    matches!(ty, TOKEN_CONTROL | TOKEN_USER_DEFINED | TOKEN_UNKNOWN)
}
