//! Loads a Hugging Face `LlamaForCausalLM`-layout checkpoint directory:
//! `config.json`, `model.safetensors` or sharded `model.safetensors.index.json`,
//! and `tokenizer.json` / `tokenizer_config.json`.
//!
//! Weights are read shard by shard, chunk by chunk ([`st_reader`]) straight into
//! the form the engine keeps: 16-bit checkpoints stay 16-bit unless f32 is asked
//! for, so a bf16 checkpoint takes its own size in memory, once.

use super::config::{DecoderConfig, HfLlamaConfig};
use super::linear::Linear;
use super::llama::{Block, Llama, Weights};
use super::st_reader::{Checkpoint, Stored};
use super::{tokenizer_json, WeightDtype};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use half::vec::HalfBitsVecExt;
use half::{bf16, f16};
use reka_kernels::half_matmul::HalfType;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Reads the checkpoint in `dir` and serves it as `name`, keeping the weights in
/// `dtype`.
pub fn load(name: &str, dir: &Path, dtype: WeightDtype) -> Result<super::Loaded> {
    let hf = read_config(dir)?;
    let cfg = hf.decoder();
    let ck = Checkpoint::open(&weight_files(dir)?)?;
    let weights = decoder_weights(&ck, &cfg, "model.", hf.tie_word_embeddings, dtype)?;
    let (info, vocab) = tokenizer_json::model_info(name, dir, &hf, &cfg)?;
    Ok((Llama::new(cfg, weights, &Device::Cpu)?, info, vocab))
}

/// The decoder weights of `ck` shaped `cfg`, named `{prefix}layers.N…`,
/// `{prefix}embed_tokens`, `{prefix}norm` and `lm_head` (or the embeddings
/// when `tied` or absent), kept in `dtype`.
pub fn decoder_weights(ck: &Checkpoint, cfg: &DecoderConfig, prefix: &str, tied: bool, dtype: WeightDtype) -> Result<Weights> {
    let half = match (dtype, ck.main_dtype()) {
        (WeightDtype::F32, _) | (WeightDtype::Auto, Some(Stored::F32) | None) => None,
        (WeightDtype::Bf16, _) | (WeightDtype::Auto, Some(Stored::Bf16)) => Some(HalfType::Bf16),
        (WeightDtype::F16, _) | (WeightDtype::Auto, Some(Stored::F16)) => Some(HalfType::F16),
    };
    tracing::info!("weights kept as {}", half.map_or("f32", |h| if h == HalfType::Bf16 { "bf16" } else { "f16" }));
    let device = Device::Cpu;
    let lin = |p: &str, out: usize, inp: usize| -> Result<Linear> {
        Ok(match half {
            Some(kind) => Linear::Half(ck.half_matrix(p, out, inp, kind)?),
            None => Linear::from_tensor(ck.tensor(p, &[out, inp], &device)?),
        })
    };
    let norm = |p: &str, n: usize| ck.tensor(p, &[n], &device);
    let (h, nh, nkv, hd, ff) = (
        cfg.hidden_size,
        cfg.num_heads,
        cfg.num_kv_heads,
        cfg.head_dim,
        cfg.intermediate_size,
    );
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let p = format!("{prefix}layers.{i}");
        blocks.push(Block {
            attn_norm: norm(&format!("{p}.input_layernorm.weight"), h)?,
            ffn_norm: norm(&format!("{p}.post_attention_layernorm.weight"), h)?,
            wq: lin(&format!("{p}.self_attn.q_proj.weight"), nh * hd, h)?,
            wk: lin(&format!("{p}.self_attn.k_proj.weight"), nkv * hd, h)?,
            wv: lin(&format!("{p}.self_attn.v_proj.weight"), nkv * hd, h)?,
            wo: lin(&format!("{p}.self_attn.o_proj.weight"), h, nh * hd)?,
            w_gate: lin(&format!("{p}.mlp.gate_proj.weight"), ff, h)?,
            w_up: lin(&format!("{p}.mlp.up_proj.weight"), ff, h)?,
            w_down: lin(&format!("{p}.mlp.down_proj.weight"), h, ff)?,
        });
    }
    let emb_name = format!("{prefix}embed_tokens.weight");
    let emb_name = emb_name.as_str();
    let shape = [cfg.vocab_size, h];
    let embeddings = match half {
        None => ck.tensor(emb_name, &shape, &device)?,
        Some(HalfType::Bf16) => {
            Tensor::from_vec(ck.halves(emb_name, &shape, HalfType::Bf16)?.reinterpret_into::<bf16>(), &shape[..], &device)?
        }
        Some(HalfType::F16) => {
            Tensor::from_vec(ck.halves(emb_name, &shape, HalfType::F16)?.reinterpret_into::<f16>(), &shape[..], &device)?
        }
    };
    let lm_head = if tied || !ck.contains("lm_head.weight") {
        lin(emb_name, cfg.vocab_size, h)?
    } else {
        lin("lm_head.weight", cfg.vocab_size, h)?
    };
    Ok(Weights {
        embeddings,
        blocks,
        final_norm: norm(&format!("{prefix}norm.weight"), h)?,
        lm_head,
    })
}

/// The safetensors files of a checkpoint, from the shard index when there is one.
/// The checkpoint's `config.json`, refused when it asks for a rope scaling we
/// do not implement.
pub fn read_config(dir: &Path) -> Result<HfLlamaConfig> {
    let text = std::fs::read_to_string(dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))?;
    let hf: HfLlamaConfig = serde_json::from_str(&text).context("parsing config.json")?;
    if let super::config::RopeScaling::Unsupported(kind) = &hf.decoder().rope_scaling {
        bail!("config.json asks for rope_scaling type {kind:?}, which is not supported (linear, dynamic, yarn and llama3 are)");
    }
    Ok(hf)
}

/// The safetensors files of a checkpoint directory (one file, or the shards
/// its index names).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
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
