//! Loads a Hugging Face `LlamaForCausalLM`-layout checkpoint directory:
//! `config.json`, `model.safetensors` or sharded `model.safetensors.index.json`
//! (memory-mapped), and `tokenizer.json` / `tokenizer_config.json`.

use super::config::HfLlamaConfig;
use super::llama::{Block, Llama, Weights};
use super::tokenizer_json;
use anyhow::{bail, Context, Result};
use super::linear::Linear;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Reads the checkpoint in `dir` and serves it as `name`.
pub fn load(name: &str, dir: &Path) -> Result<super::Loaded> {
    let cfg_text = std::fs::read_to_string(dir.join("config.json")).context("reading config.json")?;
    let hf: HfLlamaConfig = serde_json::from_str(&cfg_text).context("parsing config.json")?;
    let cfg = hf.decoder();
    let files = weight_files(dir)?;
    let device = Device::Cpu;
    // The CPU path computes in f32; weights are converted tensor by tensor as
    // they are read from the memory map.
    let vb = mmap(&files, &device)?;
    let lin = |p: &str, out: usize, inp: usize| -> Result<Linear> {
        Ok(Linear::from_tensor(vb.get((out, inp), p).with_context(|| format!("weight {p}"))?))
    };
    let (h, nh, nkv, hd, ff) = (
        cfg.hidden_size,
        cfg.num_heads,
        cfg.num_kv_heads,
        cfg.head_dim,
        cfg.intermediate_size,
    );
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let p = format!("model.layers.{i}");
        blocks.push(Block {
            attn_norm: vb.get(h, &format!("{p}.input_layernorm.weight"))?,
            ffn_norm: vb.get(h, &format!("{p}.post_attention_layernorm.weight"))?,
            wq: lin(&format!("{p}.self_attn.q_proj.weight"), nh * hd, h)?,
            wk: lin(&format!("{p}.self_attn.k_proj.weight"), nkv * hd, h)?,
            wv: lin(&format!("{p}.self_attn.v_proj.weight"), nkv * hd, h)?,
            wo: lin(&format!("{p}.self_attn.o_proj.weight"), h, nh * hd)?,
            w_gate: lin(&format!("{p}.mlp.gate_proj.weight"), ff, h)?,
            w_up: lin(&format!("{p}.mlp.up_proj.weight"), ff, h)?,
            w_down: lin(&format!("{p}.mlp.down_proj.weight"), h, ff)?,
        });
    }
    let embeddings = vb.get((cfg.vocab_size, h), "model.embed_tokens.weight")?;
    let lm_head = if hf.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
        Linear::from_tensor(embeddings.clone())
    } else {
        lin("lm_head.weight", cfg.vocab_size, h)?
    };
    let weights = Weights {
        embeddings,
        blocks,
        final_norm: vb.get(h, "model.norm.weight")?,
        lm_head,
    };
    let (info, vocab) = tokenizer_json::model_info(name, dir, &hf, &cfg)?;
    Ok((Llama::new(cfg, weights, &device)?, info, vocab))
}

/// The safetensors files of a checkpoint, from the shard index when there is one.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index)?)?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .context("index has no weight_map")?;
        let names: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(names.into_iter().map(|n| dir.join(n)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    bail!("{} has neither model.safetensors nor model.safetensors.index.json", dir.display())
}

#[allow(unsafe_code)]
fn mmap<'a>(files: &[PathBuf], device: &Device) -> Result<VarBuilder<'a>> {
    // SAFETY: the files are memory-mapped read-only; like every safetensors loader
    // we rely on them not being modified while the host runs.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(files, DType::F32, device)? })
}
