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
    /// YaRN: frequencies blended between interpolated and extrapolated by a
    /// ramp over the dimensions, and cos/sin scaled by an attention factor.
    Yarn {
        factor: f64,
        original_max_position: f64,
        beta_fast: f64,
        beta_slow: f64,
        /// Scale on cos and sin (`attention_factor`, or derived from `mscale`).
        attention_factor: f64,
        truncate: bool,
    },
    /// A scaling type we do not implement; loading refuses it.
    Unsupported(String),
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
    /// Leading dims of each head that rotate (`head_dim` unless the model
    /// has a partial rotary factor, e.g. Reka's `rotary_pct`).
    pub rotary_dim: usize,
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
    /// Inverse frequencies of the rotary embedding, one per pair of a head's
    /// dims; the pairs past `rotary_dim / 2` get 0 (no rotation).
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let d = self.rotary_dim as f64;
        (0..self.head_dim / 2)
            .map(|i| {
                if i >= self.rotary_dim / 2 {
                    return 0.0;
                }
                let f = 1.0 / self.rope_theta.powf(2.0 * i as f64 / d);
                match self.rope_scaling {
                    RopeScaling::Yarn { .. } => self.yarn_freq(i, f) as f32,
                    _ => self.scale_freq(f) as f32,
                }
            })
            .collect()
    }

    /// The rotary tables `(cos, sin)`, `[context, head_dim / 2]` each: angle
    /// `position · inv_freq` in f32, scaled by the attention factor. The CPU and
    /// GPU decoders both take them from here, so they rotate identically.
    pub fn rope_tables(&self) -> (Vec<f32>, Vec<f32>) {
        let inv = self.rope_inv_freq();
        let a = self.rope_attention_factor();
        let n = self.context_length * inv.len();
        let (mut cos, mut sin) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let rh = self.rotary_dim / 2;
        for p in 0..self.context_length {
            for (i, f) in inv.iter().enumerate() {
                if i >= rh {
                    // Past the rotary dims: no rotation (and no YaRN scale).
                    cos.push(1.0);
                    sin.push(0.0);
                    continue;
                }
                let angle = p as f32 * f;
                let (c, s) = (angle.cos(), angle.sin());
                if a == 1.0 {
                    cos.push(c);
                    sin.push(s);
                } else {
                    cos.push((c as f64 * a) as f32);
                    sin.push((s as f64 * a) as f32);
                }
            }
        }
        (cos, sin)
    }

    /// The factor on cos and sin (YaRN's attention scaling; 1 otherwise).
    pub fn rope_attention_factor(&self) -> f64 {
        match self.rope_scaling {
            RopeScaling::Yarn { attention_factor, .. } => attention_factor,
            _ => 1.0,
        }
    }

    /// YaRN's frequency for dimension pair `i` (transformers' `_compute_yarn_parameters`).
    fn yarn_freq(&self, i: usize, freq: f64) -> f64 {
        let RopeScaling::Yarn { factor, original_max_position, beta_fast, beta_slow, truncate, .. } = self.rope_scaling else {
            return freq;
        };
        let dim = self.rotary_dim as f64;
        let correction = |rotations: f64| {
            dim * (original_max_position / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * self.rope_theta.ln())
        };
        let (mut low, mut high) = (correction(beta_fast), correction(beta_slow));
        if truncate {
            (low, high) = (low.floor(), high.ceil());
        }
        let (low, mut high) = (low.max(0.0), high.min(dim - 1.0));
        if low == high {
            high += 0.001;
        }
        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
        let extrapolation = 1.0 - ramp;
        (freq / factor) * (1.0 - extrapolation) + freq * extrapolation
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
            RopeScaling::Yarn { .. } | RopeScaling::Unsupported(_) => freq,
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
            rotary_dim: head_dim,
            vocab_size: self.vocab_size,
            rope_theta: self
                .rope_theta
                .or_else(|| self.rope_parameters.as_ref()?.get("rope_theta")?.as_f64())
                .unwrap_or(10_000.0),
            rope_scaling: parse_rope_scaling(
                self.rope_scaling.as_ref().or(self.rope_parameters.as_ref()),
                self.max_position_embeddings as f64,
            ),
            rope_style: RopeStyle::Halves,
            rms_norm_eps: self.rms_norm_eps,
            context_length: self.max_position_embeddings,
            attn_f16: false,
        }
    }
}

/// Reads `rope_scaling` (`rope_type` or the older `type` key).
pub fn parse_rope_scaling(v: Option<&serde_json::Value>, max_position: f64) -> RopeScaling {
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
        // Dynamic NTK only changes frequencies for sequences longer than
        // max_position_embeddings, which is our context limit: plain RoPE here.
        "default" | "dynamic" => RopeScaling::None,
        "yarn" => {
            let factor = num("factor", 1.0);
            let mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
            let attention_factor = match (v.get("attention_factor").and_then(|x| x.as_f64()), v.get("mscale").and_then(|x| x.as_f64()), v.get("mscale_all_dim").and_then(|x| x.as_f64())) {
                (Some(a), _, _) => a,
                (None, Some(m), Some(all)) if m != 0.0 && all != 0.0 => mscale(factor, m) / mscale(factor, all),
                _ => mscale(factor, 1.0),
            };
            RopeScaling::Yarn {
                factor,
                original_max_position: num("original_max_position_embeddings", max_position),
                beta_fast: num("beta_fast", 32.0),
                beta_slow: num("beta_slow", 1.0),
                attention_factor,
                truncate: v.get("truncate").and_then(|x| x.as_bool()).unwrap_or(true),
            }
        }
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor", 8.0),
            low_freq_factor: num("low_freq_factor", 1.0),
            high_freq_factor: num("high_freq_factor", 4.0),
            original_max_position: num("original_max_position_embeddings", 8192.0),
        },
        other => RopeScaling::Unsupported(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// YaRN frequencies and attention factor against transformers'
    /// (tests/fixtures/rope: the script and its versions are beside the data).
    #[test]
    fn yarn_matches_transformers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/rope/yarn_reference.json");
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        for case in r["cases"].as_array().expect("cases") {
            let cfg: HfLlamaConfig = serde_json::from_value(case["config"].clone()).expect("config");
            let d = cfg.decoder();
            assert!(matches!(d.rope_scaling, RopeScaling::Yarn { .. }), "{:?}", d.rope_scaling);
            let want: Vec<f64> = case["inv_freq"].as_array().expect("inv_freq").iter().filter_map(|x| x.as_f64()).collect();
            let got = d.rope_inv_freq();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 1e-6 * w.abs(), "{g} vs {w}");
            }
            let a = case["attention_factor"].as_f64().expect("attention_factor");
            assert!((d.rope_attention_factor() - a).abs() < 1e-9, "{} vs {a}", d.rope_attention_factor());
        }
    }

    #[test]
    fn unknown_scaling_is_flagged_not_ignored() {
        let v = serde_json::json!({"rope_type": "longrope", "factor": 4.0});
        assert_eq!(parse_rope_scaling(Some(&v), 4096.0), RopeScaling::Unsupported("longrope".into()));
        let v = serde_json::json!({"type": "dynamic", "factor": 2.0});
        assert_eq!(parse_rope_scaling(Some(&v), 4096.0), RopeScaling::None);
    }

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
