//! The decoder's shape, read from GGUF metadata or a Hugging Face `config.json`,
//! never hard-coded.

use reka_kernels::RopeStyle;
use serde::Deserialize;

/// Rotary embedding frequency scaling, as Llama-family configs declare it.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3's band-wise scaling of the low frequencies.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position: f64,
    },
}

/// Everything the decoder needs to know about its shape.
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub rope_style: RopeStyle,
    pub rms_norm_eps: f64,
    pub context_length: usize,
    /// Hold q/k/v and attention weights at f16 precision, as llama.cpp's default
    /// f16 KV cache does (GGUF models, for parity with llama.cpp); full f32 otherwise.
    pub attn_f16: bool,
}

impl DecoderConfig {
    /// Inverse frequencies of the rotary embedding, one per pair of a head's dims.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim as f64;
        (0..self.head_dim / 2)
            .map(|i| {
                let f = 1.0 / self.rope_theta.powf(2.0 * i as f64 / d);
                self.scale_freq(f) as f32
            })
            .collect()
    }

    fn scale_freq(&self, freq: f64) -> f64 {
        match self.rope_scaling {
            RopeScaling::None => freq,
            RopeScaling::Linear { factor } => freq / factor,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position,
            } => {
                let low_wavelen = original_max_position / low_freq_factor;
                let high_wavelen = original_max_position / high_freq_factor;
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                if wavelen < high_wavelen {
                    freq
                } else if wavelen > low_wavelen {
                    freq / factor
                } else {
                    let smooth = (original_max_position / wavelen - low_freq_factor)
                        / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * freq / factor + smooth * freq
                }
            }
        }
    }
}

/// The fields of a Hugging Face `LlamaForCausalLM` `config.json` that we read.
#[derive(Debug, Deserialize)]
pub struct HfLlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub vocab_size: usize,
    pub rope_theta: Option<f64>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_ctx")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers 5 writes `rope_theta` and the scaling type here instead.
    pub rope_parameters: Option<serde_json::Value>,
    pub bos_token_id: Option<serde_json::Value>,
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_ctx() -> usize {
    4096
}

impl HfLlamaConfig {
    /// The decoder shape this config describes (HF checkpoints rotate halves).
    pub fn decoder(&self) -> DecoderConfig {
        let head_dim = self
            .head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads);
        DecoderConfig {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            vocab_size: self.vocab_size,
            rope_theta: self
                .rope_theta
                .or_else(|| self.rope_parameters.as_ref()?.get("rope_theta")?.as_f64())
                .unwrap_or(10_000.0),
            rope_scaling: parse_rope_scaling(self.rope_scaling.as_ref().or(self.rope_parameters.as_ref())),
            rope_style: RopeStyle::Halves,
            rms_norm_eps: self.rms_norm_eps,
            context_length: self.max_position_embeddings,
            attn_f16: false,
        }
    }
}

/// Reads `rope_scaling` (`rope_type` or the older `type` key).
pub fn parse_rope_scaling(v: Option<&serde_json::Value>) -> RopeScaling {
    let Some(v) = v else {
        return RopeScaling::None;
    };
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|k| k.as_str())
        .unwrap_or("default");
    let num = |k: &str, d: f64| v.get(k).and_then(|x| x.as_f64()).unwrap_or(d);
    match kind {
        "linear" => RopeScaling::Linear {
            factor: num("factor", 1.0),
        },
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor", 8.0),
            low_freq_factor: num("low_freq_factor", 1.0),
            high_freq_factor: num("high_freq_factor", 4.0),
            original_max_position: num("original_max_position_embeddings", 8192.0),
        },
        _ => RopeScaling::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let cfg: HfLlamaConfig = serde_json::from_value(serde_json::json!({
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "vocab_size": 10, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        }))
        .expect("config parses");
        let d = cfg.decoder();
        let plain = DecoderConfig {
            rope_scaling: RopeScaling::None,
            ..d.clone()
        };
        let (scaled, base) = (d.rope_inv_freq(), plain.rope_inv_freq());
        assert_eq!(scaled[0], base[0], "highest frequency untouched");
        let last = base.len() - 1;
        assert!((scaled[last] - base[last] / 8.0).abs() < 1e-12);
    }
}
