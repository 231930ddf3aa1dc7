//! Reads a Hugging Face checkpoint's `tokenizer.json` (byte-level BPE) and
//! `tokenizer_config.json` into the [`ModelInfo`] that guests use, so that
//! tokenisation stays in the preprocess component for every model format.

use super::config::{DecoderConfig, HfLlamaConfig};
use super::END_OF_TURN_TOKENS;
use anyhow::{bail, Context, Result};
use reka_protocol::{ModelInfo, VocabSpec};
use serde_json::Value;
use std::path::Path;

/// Builds the model info of a checkpoint directory.
pub fn model_info(
    name: &str,
    dir: &Path,
    hf: &HfLlamaConfig,
    cfg: &DecoderConfig,
) -> Result<(ModelInfo, VocabSpec)> {
    let tok_cfg: Value = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let tok_path = dir.join("tokenizer.json");
    let vocab = if tok_path.exists() {
        let tok: Value = serde_json::from_str(&std::fs::read_to_string(&tok_path).context("reading tokenizer.json")?)
            .context("parsing tokenizer.json")?;
        vocab_spec(&tok, cfg.vocab_size)?
    } else {
        // No tokenizer.json: cl100k_base (the Reka tokenizer) with the special
        // tokens the checkpoint declares in tokenizer_config.json.
        super::tiktoken::cl100k_vocab(&declared_specials(&tok_cfg), cfg.vocab_size)?
    };
    let id_of = |t: &str| vocab.tokens.iter().position(|s| s == t).map(|i| i as u32);
    let token_of = |key: &str| -> Option<u32> {
        let v = tok_cfg.get(key)?;
        let s = v.as_str().or_else(|| v.get("content").and_then(|c| c.as_str()))?;
        id_of(s)
    };
    let first_id = |v: &Option<Value>| -> Option<u32> {
        match v.as_ref()? {
            Value::Number(n) => n.as_u64().map(|x| x as u32),
            Value::Array(a) => a.first().and_then(|x| x.as_u64()).map(|x| x as u32),
            _ => None,
        }
    };
    let bos = first_id(&hf.bos_token_id).or_else(|| token_of("bos_token"));
    let eos = first_id(&hf.eos_token_id).or_else(|| token_of("eos_token"));
    let mut stops: Vec<u32> = eos.into_iter().collect();
    if let Some(Value::Array(a)) = &hf.eos_token_id {
        stops.extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32));
    }
    for t in END_OF_TURN_TOKENS {
        if let Some(i) = id_of(t) {
            if vocab.token_types.get(i as usize).is_some_and(|&ty| ty == 3 || ty == 4) {
                stops.push(i);
            }
        }
    }
    stops.sort_unstable();
    stops.dedup();
    let info = ModelInfo {
        name: name.to_string(),
        architecture: "llama".into(),
        vocab_size: cfg.vocab_size as u32,
        context_length: cfg.context_length as u32,
        bos_token_id: bos,
        add_bos: tok_cfg
            .get("add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        eos_token_id: eos,
        stop_token_ids: stops,
        chat_template: tok_cfg
            .get("chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        stop_strings: Vec::new(),
        chat_format: None,
        media: None,
    };
    Ok((info, vocab))
}

/// Special tokens of `tokenizer_config.json`'s `added_tokens_decoder`.
fn declared_specials(tok_cfg: &Value) -> Vec<(String, u32)> {
    let Some(map) = tok_cfg.get("added_tokens_decoder").and_then(Value::as_object) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(id, t)| Some((t.get("content")?.as_str()?.to_string(), id.parse().ok()?)))
        .collect()
}

/// Converts a byte-level BPE `tokenizer.json` into the GGUF-style vocabulary.
/// The vocabulary of a parsed `tokenizer.json` (BPE only), `vocab_size` ids
/// (ids past it are dropped). Public for the fuzz targets.
pub fn vocab_spec(tok: &Value, vocab_size: usize) -> Result<VocabSpec> {
    let model = tok.get("model").context("tokenizer.json has no model")?;
    if model.get("type").and_then(|t| t.as_str()) != Some("BPE") {
        bail!("only BPE tokenizer.json files are supported");
    }
    let map = model
        .get("vocab")
        .and_then(|v| v.as_object())
        .context("tokenizer.json model has no vocab")?;
    let mut tokens = vec![String::new(); vocab_size];
    let mut token_types = vec![5i32; vocab_size]; // unused until seen
    let mut put = |id: u64, s: &str, ty: i32| {
        if let Some(slot) = tokens.get_mut(id as usize) {
            *slot = s.to_string();
            token_types[id as usize] = ty;
        }
    };
    for (s, id) in map {
        put(id.as_u64().context("vocab id is not a number")?, s, 1);
    }
    for added in tok.get("added_tokens").and_then(|a| a.as_array()).into_iter().flatten() {
        let (Some(id), Some(s)) = (
            added.get("id").and_then(|i| i.as_u64()),
            added.get("content").and_then(|c| c.as_str()),
        ) else {
            continue;
        };
        let special = added.get("special").and_then(|b| b.as_bool()).unwrap_or(false);
        put(id, s, if special { 3 } else { 4 });
    }
    let merges = model
        .get("merges")
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(p) => Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(VocabSpec {
        model: "gpt2".into(),
        pre: pre_tokenizer_kind(tok.get("pre_tokenizer")),
        tokens,
        merges,
        token_types,
    })
}

/// Names the pre-tokeniser the way GGUF's `tokenizer.ggml.pre` does.
fn pre_tokenizer_kind(pre: Option<&Value>) -> String {
    let text = pre.map(|p| p.to_string()).unwrap_or_default();
    if text.contains("\\\\p{N}{1,3}") || text.contains("\\p{N}{1,3}") {
        "llama-bpe".into()
    } else if text.contains("\"individual_digits\":true") {
        "smollm".into()
    } else {
        "gpt2".into()
    }
}
