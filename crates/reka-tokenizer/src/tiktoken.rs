//! tiktoken vocabularies (e.g. `cl100k_base`, the Reka tokenizer) as a
//! [`VocabSpec`]: tiktoken stores only "mergeable ranks" (byte strings in rank
//! order); byte-level BPE with merges ranked by their result's rank gives the
//! same tokens, and whole pieces that are tokens are taken as they are (the
//! `llama-bpe` pre-tokeniser, whose pattern is cl100k's).

use crate::{bytes, Error, VocabSpec, TOKEN_CONTROL, TOKEN_NORMAL, TOKEN_UNUSED};
use std::collections::HashMap;

/// Builds the vocabulary from `ranks` (token bytes, index = id), `specials`
/// (text, id) and the model's vocabulary size (ids with no token become unused
/// placeholders).
pub fn vocab_from_ranks(ranks: &[Vec<u8>], specials: &[(String, u32)], vocab_size: usize) -> Result<VocabSpec, Error> {
    let top = specials.iter().map(|(_, id)| *id as usize + 1).max().unwrap_or(0);
    let n = vocab_size.max(ranks.len()).max(top);
    let mapped: Vec<String> = ranks.iter().map(|b| b.iter().map(|&x| bytes::byte_to_char(x)).collect()).collect();
    let mut tokens: Vec<String> = (0..n).map(|i| format!("<|reka_unused_{i}|>")).collect();
    let mut token_types = vec![TOKEN_UNUSED; n];
    for (i, t) in mapped.iter().enumerate() {
        tokens[i] = t.clone();
        token_types[i] = TOKEN_NORMAL;
    }
    for (text, id) in specials {
        tokens[*id as usize] = text.clone();
        token_types[*id as usize] = TOKEN_CONTROL;
    }
    let rank_of: HashMap<&[u8], usize> = ranks.iter().enumerate().map(|(i, b)| (b.as_slice(), i)).collect();
    let mut merges = Vec::new();
    for (r, b) in ranks.iter().enumerate() {
        for split in 1..b.len() {
            let (l, rt) = b.split_at(split);
            if let (Some(&li), Some(&ri)) = (rank_of.get(l), rank_of.get(rt)) {
                if li < r && ri < r {
                    merges.push(format!("{} {}", mapped[li], mapped[ri]));
                }
            }
        }
    }
    if ranks.is_empty() {
        return Err(Error::EmptyVocab);
    }
    Ok(VocabSpec {
        model: "gpt2".into(),
        pre: "llama-bpe".into(),
        tokens,
        merges,
        token_types,
    })
}
