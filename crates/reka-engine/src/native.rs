//! The engine alone, without HTTP or wasm: greedy generation for `reka-host run`,
//! used to compare the full request path against the bare forward pass.

use crate::model::LoadedModel;
use anyhow::Result;
use reka_tokenizer::IncrementalDecoder;
use std::time::{Duration, Instant};

/// What a native run produced and how long it took.
pub struct RunReport {
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub text: String,
    pub prefill: Duration,
    pub decode: Duration,
    /// The five largest logits after the prompt, `(token, logit)`.
    pub first_top: Vec<(u32, f32)>,
}

impl RunReport {
    /// Decode tokens per second (tokens after the first, over their time).
    pub fn decode_tokens_per_s(&self) -> f64 {
        let n = self.ids.len().saturating_sub(1) as f64;
        n / self.decode.as_secs_f64().max(1e-9)
    }
}

/// Greedy-decodes up to `max_tokens` after the raw `prompt` (no chat template).
pub fn greedy(model: &LoadedModel, prompt: &str, max_tokens: usize) -> Result<RunReport> {
    let tok = &model.tokenizer;
    let mut prompt_ids = Vec::new();
    if model.info.add_bos {
        prompt_ids.extend(model.info.bos_token_id);
    }
    prompt_ids.extend(tok.encode(prompt, false));
    let mut cache = model.decoder.new_cache();
    let t0 = Instant::now();
    let mut logits = model.decoder.forward(&prompt_ids, &mut cache)?.to_vec1::<f32>()?;
    let prefill = t0.elapsed();
    let first_top = top_k(&logits, 5);
    let t1 = Instant::now();
    let mut ids = Vec::new();
    let mut dec = IncrementalDecoder::new(true);
    let mut text = String::new();
    for step in 0..max_tokens {
        let next = argmax(&logits);
        ids.push(next);
        if model.info.stop_token_ids.contains(&next) {
            break;
        }
        text.push_str(&dec.push(tok, next));
        if step + 1 == max_tokens {
            break;
        }
        logits = model.decoder.forward(&[next], &mut cache)?.to_vec1::<f32>()?;
    }
    text.push_str(&dec.finish());
    Ok(RunReport {
        prompt_ids,
        ids,
        text,
        prefill,
        decode: t1.elapsed(),
        first_top,
    })
}

/// The `k` largest values with their indices, largest first.
pub fn top_k(v: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<(u32, f32)> = v.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
    idx.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    idx.truncate(k);
    idx
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
