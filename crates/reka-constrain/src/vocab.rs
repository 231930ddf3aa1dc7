//! A model's vocabulary as llguidance sees it: every token's bytes in a token
//! trie (special tokens marked, so a grammar names them as `<tool_call>`),
//! and the tokenizer for the text a grammar forces.

use reka_tokenizer::Tokenizer;
use std::sync::Arc;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// The vocabulary and the ids that end an answer.
pub struct Vocab {
    env: TokEnv,
    tok: Tokenizer,
    stop_ids: Vec<u32>,
    size: usize,
}

struct Env {
    trie: TokTrie,
    tok: Tokenizer,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        // Whole UTF-8 as the model's tokenizer would write it; what is not
        // UTF-8 the trie's greedy tokenisation takes.
        match std::str::from_utf8(s) {
            Ok(text) => self.tok.encode(text, false),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

impl Vocab {
    /// The vocabulary of `tok`; `stop_ids` end an answer (the first is the
    /// grammar's end token), none of them is ever text.
    pub fn new(tok: Tokenizer, stop_ids: &[u32]) -> Result<Self, String> {
        let size = tok.vocab_size();
        let eos = *stop_ids.first().ok_or("a constraint needs the model's stop token")?;
        let words: Vec<Vec<u8>> = (0..size as u32)
            .map(|id| {
                let b = tok.token_bytes(id);
                if tok.is_special(id) || tok.is_control(id) || stop_ids.contains(&id) {
                    let mut w = Vec::with_capacity(b.len() + 1);
                    w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                    w.extend_from_slice(b);
                    w
                } else {
                    b.to_vec()
                }
            })
            .collect();
        let info = TokRxInfo::new(size as u32, eos);
        let trie = TokTrie::from(&info, &words);
        Ok(Self { env: Arc::new(Env { trie, tok: tok.clone() }), tok, stop_ids: stop_ids.to_vec(), size })
    }

    pub(crate) fn env(&self) -> &TokEnv {
        &self.env
    }

    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    /// Tokens in the vocabulary.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the vocabulary has the special token `name` (e.g. `<tool_call>`).
    pub fn has_special(&self, name: &str) -> bool {
        self.env.tok_trie().get_special_token(name).is_some()
    }
}
