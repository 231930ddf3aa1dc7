//! [`Embedder`]: a sentence-transformers model directory loaded for inference.
//! Texts are tokenised, sorted by length and run through the encoder in padded
//! batches, mean-pooled and L2-normalised; the vectors come back in input order.

use crate::bert::{to_vec, Bert};
use crate::config::{read_json, BertConfig, SentenceConfig};
use crate::pool::{l2_normalize, mean_pool};
use crate::tokenizer::Tokenizer;
use anyhow::{bail, Result};
use candle_core::Device;
use std::path::Path;

/// Most texts in one forward pass.
pub const MAX_BATCH: usize = 32;
/// Most padded tokens (texts × longest) in one forward pass.
const MAX_BATCH_TOKENS: usize = 8192;
/// A text joins a batch while it is at least half as long as the batch's
/// longest, or at most this many tokens shorter.
const PAD_SLACK: usize = 16;

/// A loaded sentence-embedding model. It is `Send + Sync`: one instance can
/// serve many threads (each call runs its own forward pass).
pub struct Embedder {
    tokenizer: Tokenizer,
    bert: Bert,
    sentence: SentenceConfig,
}

/// The result of [`Embedder::embed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector of [`Embedder::dim`] floats per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the model read, [CLS] and [SEP] included, summed over the texts.
    pub prompt_tokens: usize,
}

impl Embedder {
    /// Loads the model directory (`config.json`, `model.safetensors`,
    /// `tokenizer.json`, `modules.json`, `sentence_bert_config.json`,
    /// `1_Pooling/config.json`), as [`crate::fetch::ensure`] returns it.
    pub fn load(dir: &Path) -> Result<Embedder> {
        let cfg: BertConfig = read_json(&dir.join("config.json"))?;
        let sentence = SentenceConfig::load(dir)?;
        if sentence.dimension != cfg.hidden_size {
            bail!(
                "pooling dimension {} differs from hidden_size {}",
                sentence.dimension,
                cfg.hidden_size
            );
        }
        let max_len = sentence.max_seq_length.min(cfg.max_position_embeddings);
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"), max_len)?;
        if tokenizer.wordpiece().len() > cfg.vocab_size {
            bail!(
                "the tokenizer has {} entries, the model {}",
                tokenizer.wordpiece().len(),
                cfg.vocab_size
            );
        }
        let bert = Bert::load(&dir.join("model.safetensors"), &cfg, &Device::Cpu)?;
        Ok(Embedder {
            tokenizer,
            bert,
            sentence,
        })
    }

    /// The token ids the model reads for `text`: `[CLS] … [SEP]`, truncated to
    /// [`Embedder::max_tokens`].
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        if self.sentence.do_lower_case {
            self.tokenizer.encode(&text.to_lowercase())
        } else {
            self.tokenizer.encode(text)
        }
    }

    /// Embeds `texts`; batches of similar length run together.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut vectors = vec![Vec::new(); ids.len()];
        let mut rest = order.as_slice();
        while let Some(&first) = rest.first() {
            let longest = ids[first].len();
            let take = rest
                .iter()
                .enumerate()
                .take_while(|&(n, &i)| {
                    let len = ids[i].len();
                    n < MAX_BATCH
                        && (n + 1) * longest <= MAX_BATCH_TOKENS.max(longest)
                        && (2 * len >= longest || longest - len <= PAD_SLACK)
                })
                .count();
            let (batch, tail) = rest.split_at(take);
            let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
            for (&i, v) in batch.iter().zip(self.forward(&rows)?) {
                vectors[i] = v;
            }
            rest = tail;
        }
        Ok(Embeddings {
            vectors,
            prompt_tokens: ids.iter().map(Vec::len).sum(),
        })
    }

    /// Embeds `texts` in exactly one forward pass, all padded to the longest
    /// (no sorting, no splitting): what [`Embedder::embed`] does per batch.
    pub fn embed_padded(&self, texts: &[&str]) -> Result<Embeddings> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect();
        let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        Ok(Embeddings {
            vectors: self.forward(&rows)?,
            prompt_tokens: ids.iter().map(Vec::len).sum(),
        })
    }

    /// One forward pass over right-padded rows, pooled and normalised.
    fn forward(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
        let mut ids = vec![0u32; rows.len() * seq];
        for (dst, row) in ids.chunks_exact_mut(seq).zip(rows) {
            dst[..row.len()].copy_from_slice(row);
        }
        let hidden = to_vec(&self.bert.forward(&ids, rows.len(), seq, &lengths)?)?;
        let dim = self.dim();
        Ok(hidden
            .chunks_exact(seq * dim)
            .zip(&lengths)
            .map(|(states, &len)| {
                let mut v = mean_pool(states, dim, len);
                if self.sentence.normalize {
                    l2_normalize(&mut v);
                }
                v
            })
            .collect())
    }

    /// Width of the vectors (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.bert.hidden_size()
    }

    /// Longest input in tokens, [CLS] and [SEP] included (256 for
    /// all-MiniLM-L6-v2); longer texts are truncated.
    pub fn max_tokens(&self) -> usize {
        self.tokenizer.max_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Embedder>();
        send_sync::<Embeddings>();
    }
}
