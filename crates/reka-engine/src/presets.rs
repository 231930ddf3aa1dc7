//! Size presets of the Reka family (Edge, Flash, Core, and a tiny one for tests),
//! kept as Hugging Face `config.json` files in `presets/` and embedded here, with
//! what each shape implies: the `LlamaForCausalLM` tensor list, the parameter
//! count and the bytes of weights (total, and read per decoded token).

use crate::model::config::HfLlamaConfig;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A named preset: a Hugging Face `config.json`.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    /// The `config.json` text (`torch_dtype` is `bfloat16`).
    pub config_json: &'static str,
}

/// Every preset, smallest first.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "reka-tiny",
        config_json: include_str!("../../../presets/reka-tiny.json"),
    },
    Preset {
        name: "reka-edge",
        config_json: include_str!("../../../presets/reka-edge.json"),
    },
    Preset {
        name: "reka-flash",
        config_json: include_str!("../../../presets/reka-flash.json"),
    },
    Preset {
        name: "reka-core",
        config_json: include_str!("../../../presets/reka-core.json"),
    },
];

/// The preset names.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The preset called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The `config.json` of preset `name` as JSON.
pub fn config_json(name: &str) -> Result<Value> {
    let Some(p) = find(name) else {
        bail!("unknown preset {name:?} (presets: {})", names().join(", "));
    };
    serde_json::from_str(p.config_json).with_context(|| format!("parsing preset {name}"))
}

/// A preset by name, or else a `config.json` file at that path.
pub fn resolve(name_or_path: &str) -> Result<Value> {
    if find(name_or_path).is_some() {
        return config_json(name_or_path);
    }
    let path = Path::new(name_or_path);
    if !path.is_file() {
        bail!(
            "{name_or_path:?} is neither a preset ({}) nor a config.json file",
            names().join(", ")
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Whether `config` is Reka Edge's (`yasa2`: `text_config` + `vision_config`).
pub fn is_edge(config: &Value) -> bool {
    matches!(config.get("model_type").and_then(Value::as_str), Some("yasa2" | "yasa_edge_mmlm_model"))
}

/// Reads a `config.json` value as the decoder's config (for Reka Edge, its
/// `text_config` in Llama terms, with the plugin's key names mapped).
pub fn hf_config(config: &Value) -> Result<HfLlamaConfig> {
    if !is_edge(config) {
        return serde_json::from_value(config.clone()).context("config.json is not a Llama config");
    }
    let t = config.get("text_config").context("config.json has no text_config")?;
    let (d, tied) = crate::model::yasa2::text_decoder(t)?;
    if d.rotary_dim != d.head_dim {
        tracing::debug!("rotary_pct < 1: the Llama view of this config rotates all dims");
    }
    let llama = serde_json::json!({
        "hidden_size": d.hidden_size, "intermediate_size": d.intermediate_size,
        "num_hidden_layers": d.num_layers, "num_attention_heads": d.num_heads,
        "num_key_value_heads": d.num_kv_heads, "head_dim": d.head_dim, "vocab_size": d.vocab_size,
        "rope_theta": d.rope_theta, "rms_norm_eps": d.rms_norm_eps,
        "max_position_embeddings": d.context_length, "tie_word_embeddings": tied,
    });
    serde_json::from_value(llama).context("text_config")
}

/// The decoder config of a checkpoint directory's `config.json` ([`hf_config`]).
pub fn read_dir_config(dir: &Path) -> Result<HfLlamaConfig> {
    let text = std::fs::read_to_string(dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))?;
    hf_config(&serde_json::from_str(&text).context("parsing config.json")?)
}

/// Every tensor of the checkpoint `config` describes: the decoder's
/// ([`llama_tensors`]; under `model.language_model.` for Reka Edge) and, for
/// Reka Edge, the ConvNeXt V2 tower and the projector.
pub fn tensors(config: &Value) -> Result<Vec<TensorSpec>> {
    let hf = hf_config(config)?;
    let mut t = llama_tensors(&hf)?;
    if is_edge(config) {
        for s in &mut t {
            if let Some(rest) = s.name.strip_prefix("model.") {
                s.name = format!("model.language_model.{rest}");
            }
        }
        let v = crate::model::yasa2::vision_config(config)?;
        t.extend(vision_tensors(&v.net, hf.hidden_size));
    }
    Ok(t)
}

/// The tensors of a ConvNeXt V2 tower (transformers' `ConvNextV2Model`
/// names under `model.vision_model.backbone.`) and the GELU projector to a
/// decoder of width `hidden` (`model.language_projection.{0,2}`).
pub fn vision_tensors(net: &reka_encoders::convnext::ConvNextV2Config, hidden: usize) -> Vec<TensorSpec> {
    let b = "model.vision_model.backbone";
    let mut t = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, init: Init| t.push(TensorSpec { name, shape, init });
    let norm = |push: &mut dyn FnMut(String, Vec<usize>, Init), p: String, c: usize| {
        push(format!("{p}.weight"), vec![c], Init::Ones);
        push(format!("{p}.bias"), vec![c], Init::Matrix);
    };
    let hs = &net.hidden_sizes;
    let (p, c0) = (net.patch_size, hs.first().copied().unwrap_or(0));
    push(format!("{b}.embeddings.patch_embeddings.weight"), vec![c0, net.in_channels, p, p], Init::Matrix);
    push(format!("{b}.embeddings.patch_embeddings.bias"), vec![c0], Init::Matrix);
    norm(&mut push, format!("{b}.embeddings.layernorm"), c0);
    for (s, (&c, &depth)) in hs.iter().zip(&net.depths).enumerate() {
        let st = format!("{b}.encoder.stages.{s}");
        if s > 0 {
            norm(&mut push, format!("{st}.downsampling_layer.0"), hs[s - 1]);
            push(format!("{st}.downsampling_layer.1.weight"), vec![c, hs[s - 1], 2, 2], Init::Matrix);
            push(format!("{st}.downsampling_layer.1.bias"), vec![c], Init::Matrix);
        }
        for j in 0..depth {
            let l = format!("{st}.layers.{j}");
            push(format!("{l}.dwconv.weight"), vec![c, 1, 7, 7], Init::Matrix);
            push(format!("{l}.dwconv.bias"), vec![c], Init::Matrix);
            norm(&mut push, format!("{l}.layernorm"), c);
            push(format!("{l}.pwconv1.weight"), vec![4 * c, c], Init::Matrix);
            push(format!("{l}.pwconv1.bias"), vec![4 * c], Init::Matrix);
            push(format!("{l}.grn.weight"), vec![1, 1, 1, 4 * c], Init::Matrix);
            push(format!("{l}.grn.bias"), vec![1, 1, 1, 4 * c], Init::Matrix);
            push(format!("{l}.pwconv2.weight"), vec![c, 4 * c], Init::Matrix);
            push(format!("{l}.pwconv2.bias"), vec![c], Init::Matrix);
        }
    }
    let c = hs.last().copied().unwrap_or(0);
    norm(&mut push, format!("{b}.layernorm"), c);
    push("model.language_projection.0.weight".into(), vec![hidden, c], Init::Matrix);
    push("model.language_projection.0.bias".into(), vec![hidden], Init::Matrix);
    push("model.language_projection.2.weight".into(), vec![hidden, hidden], Init::Matrix);
    push("model.language_projection.2.bias".into(), vec![hidden], Init::Matrix);
    t
}

/// The element type of the weights written to a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    Bf16,
    F16,
    F32,
}

impl WeightDtype {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Self::Bf16 | Self::F16 => 2,
            Self::F32 => 4,
        }
    }

    /// The name in a safetensors header.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            Self::Bf16 => "BF16",
            Self::F16 => "F16",
            Self::F32 => "F32",
        }
    }

    /// The name in `config.json`'s `torch_dtype`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
            Self::F32 => "float32",
        }
    }
}

impl FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "fp16" | "float16" => Ok(Self::F16),
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            _ => Err(format!("unknown dtype {s:?} (bf16, f16 or f32)")),
        }
    }
}

impl fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
            Self::F32 => "f32",
        })
    }
}

/// How a tensor's random initial values are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Projection and embedding matrices: small random values.
    Matrix,
    /// RMSNorm weights: all 1.0.
    Ones,
}

/// One tensor of a `LlamaForCausalLM` checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// `[out, in]` for matrices, `[hidden]` for norms.
    pub shape: Vec<usize>,
    pub init: Init,
}

impl TensorSpec {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// Every tensor of the checkpoint `cfg` describes, in Hugging Face names and
/// order: embeddings, each layer, the final norm, the LM head (absent when tied).
pub fn llama_tensors(cfg: &HfLlamaConfig) -> Result<Vec<TensorSpec>> {
    check_shape(cfg)?;
    let d = cfg.decoder();
    let (h, ff, q, kv) = (
        d.hidden_size,
        d.intermediate_size,
        d.num_heads * d.head_dim,
        d.num_kv_heads * d.head_dim,
    );
    let mat = |name: String, out: usize, inp: usize| TensorSpec {
        name,
        shape: vec![out, inp],
        init: Init::Matrix,
    };
    let norm = |name: String| TensorSpec {
        name,
        shape: vec![h],
        init: Init::Ones,
    };
    let mut t = vec![mat("model.embed_tokens.weight".into(), d.vocab_size, h)];
    for i in 0..d.num_layers {
        let p = format!("model.layers.{i}");
        t.push(norm(format!("{p}.input_layernorm.weight")));
        t.push(mat(format!("{p}.self_attn.q_proj.weight"), q, h));
        t.push(mat(format!("{p}.self_attn.k_proj.weight"), kv, h));
        t.push(mat(format!("{p}.self_attn.v_proj.weight"), kv, h));
        t.push(mat(format!("{p}.self_attn.o_proj.weight"), h, q));
        t.push(norm(format!("{p}.post_attention_layernorm.weight")));
        t.push(mat(format!("{p}.mlp.gate_proj.weight"), ff, h));
        t.push(mat(format!("{p}.mlp.up_proj.weight"), ff, h));
        t.push(mat(format!("{p}.mlp.down_proj.weight"), h, ff));
    }
    t.push(norm("model.norm.weight".into()));
    if !cfg.tie_word_embeddings {
        t.push(mat("lm_head.weight".into(), d.vocab_size, h));
    }
    Ok(t)
}

/// Rejects shapes that describe no decoder (zero sizes, heads that do not
/// divide) or whose element counts do not fit in 64 bits.
fn check_shape(cfg: &HfLlamaConfig) -> Result<()> {
    let dims = [
        ("hidden_size", cfg.hidden_size),
        ("intermediate_size", cfg.intermediate_size),
        ("num_attention_heads", cfg.num_attention_heads),
        ("vocab_size", cfg.vocab_size),
    ];
    if let Some((k, _)) = dims.iter().find(|(_, v)| *v == 0) {
        bail!("{k} is 0");
    }
    let kv = cfg.num_key_value_heads.unwrap_or(cfg.num_attention_heads);
    if kv == 0 || !cfg.num_attention_heads.is_multiple_of(kv) {
        bail!("num_attention_heads {} is not a multiple of num_key_value_heads {kv}", cfg.num_attention_heads);
    }
    let head_dim = match cfg.head_dim {
        Some(d) => d,
        None if cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) => cfg.hidden_size / cfg.num_attention_heads,
        None => bail!("hidden_size {} is not a multiple of num_attention_heads", cfg.hidden_size),
    };
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        bail!("head_dim {head_dim} must be even and non-zero");
    }
    // Every element count, and their sum in 4-byte elements, must fit in u64:
    // bound it by (layers + 2) * 16 * biggest_dim^2 * 4.
    let q = (cfg.num_attention_heads as u128).checked_mul(head_dim as u128);
    let biggest = [cfg.vocab_size, cfg.intermediate_size, cfg.hidden_size]
        .iter()
        .map(|&x| Some(x as u128))
        .chain([q])
        .try_fold(0u128, |m, x| Some(m.max(x?)));
    let bound = biggest
        .and_then(|b| b.checked_mul(b))
        .and_then(|b| b.checked_mul(16 * 4))
        .and_then(|b| b.checked_mul(cfg.num_hidden_layers as u128 + 2));
    if bound.is_none_or(|b| b > u64::MAX as u128) {
        bail!("the shape is too large");
    }
    Ok(())
}

/// Number of parameters (elements of every tensor).
pub fn parameter_count(cfg: &HfLlamaConfig) -> Result<u64> {
    Ok(llama_tensors(cfg)?.iter().map(TensorSpec::numel).sum())
}

/// Bytes of all the weights at `dtype`.
pub fn weight_bytes(cfg: &HfLlamaConfig, dtype: WeightDtype) -> Result<u64> {
    Ok(parameter_count(cfg)? * dtype.size())
}

/// Bytes of weights one decode step reads at `dtype`: every tensor once, except
/// that only one row of the embedding table is read (all of it when the LM head
/// is tied to it). Divide memory bandwidth by this for a single stream's
/// upper bound in tokens per second.
pub fn decode_bytes_per_token(cfg: &HfLlamaConfig, dtype: WeightDtype) -> Result<u64> {
    let all = parameter_count(cfg)?;
    let table = cfg.vocab_size as u64 * cfg.hidden_size as u64;
    let read = if cfg.tie_word_embeddings {
        all
    } else {
        all - table + cfg.hidden_size as u64
    };
    Ok(read * dtype.size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_that_are_not_decoders_are_rejected() {
        let mut v = config_json("reka-tiny").expect("preset");
        v["num_key_value_heads"] = serde_json::json!(3);
        assert!(llama_tensors(&hf_config(&v).expect("parses")).is_err());
        v["num_key_value_heads"] = serde_json::json!(1);
        v["hidden_size"] = serde_json::json!(0);
        assert!(llama_tensors(&hf_config(&v).expect("parses")).is_err());
        v["hidden_size"] = serde_json::json!(1u64 << 40);
        assert!(llama_tensors(&hf_config(&v).expect("parses")).is_err());
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in [WeightDtype::Bf16, WeightDtype::F16, WeightDtype::F32] {
            assert_eq!(d.to_string().parse::<WeightDtype>(), Ok(d));
            assert_eq!(d.torch_name().parse::<WeightDtype>(), Ok(d));
        }
        assert!("int8".parse::<WeightDtype>().is_err());
    }
}
