//! The BERT encoder in f32 with candle: word + position + token-type-0
//! embeddings and LayerNorm, then post-LN layers of masked multi-head
//! self-attention and an erf-GELU feed-forward block. Batches are right-padded;
//! the mask keeps padding out of every real token's attention.

use crate::config::BertConfig;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::ops::{layer_norm, softmax_last_dim};
use candle_nn::Linear;
use std::collections::HashMap;
use std::path::Path;

/// A LayerNorm's weight, bias and epsilon.
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// One encoder layer.
struct Layer {
    /// Query, key and value projections stacked into one (3·hidden outputs).
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: Norm,
}

/// The BERT encoder (no pooler: sentence-transformers does not use it).
pub struct Bert {
    word: Tensor,
    position: Tensor,
    /// Row 0 of the token-type table (every token is of type 0).
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    max_positions: usize,
    device: Device,
}

/// The named tensors of a safetensors file.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .0
            .get(name)
            .with_context(|| format!("tensor {name} is missing"))?;
        if t.dims() != shape {
            anyhow::bail!("tensor {name} has shape {:?}, expected {shape:?}", t.dims());
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    fn linear(&self, prefix: &str, inp: usize, out: usize) -> Result<Linear> {
        Ok(Linear::new(
            self.get(&format!("{prefix}.weight"), &[out, inp])?,
            Some(self.get(&format!("{prefix}.bias"), &[out])?),
        ))
    }

    fn norm(&self, prefix: &str, dim: usize, eps: f64) -> Result<Norm> {
        Ok(Norm {
            weight: self.get(&format!("{prefix}.weight"), &[dim])?,
            bias: self.get(&format!("{prefix}.bias"), &[dim])?,
            eps: eps as f32,
        })
    }
}

impl Bert {
    /// Loads the weights of `model.safetensors` (names as in HF's `BertModel`,
    /// with or without a `bert.` prefix).
    pub fn load(path: &Path, cfg: &BertConfig, device: &Device) -> Result<Bert> {
        cfg.validate()?;
        let tensors = candle_core::safetensors::load(path, device)
            .with_context(|| format!("reading {}", path.display()))?;
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| (k.strip_prefix("bert.").map_or(k.clone(), str::to_owned), v))
            .collect();
        let w = Weights(tensors);
        let (h, ff, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = w.linear(&format!("{p}.attention.self.query"), h, h)?;
            let k = w.linear(&format!("{p}.attention.self.key"), h, h)?;
            let v = w.linear(&format!("{p}.attention.self.value"), h, h)?;
            let weight = Tensor::cat(&[q.weight(), k.weight(), v.weight()], 0)?;
            let bias = match (q.bias(), k.bias(), v.bias()) {
                (Some(a), Some(b), Some(c)) => Some(Tensor::cat(&[a, b, c], 0)?),
                _ => None,
            };
            layers.push(Layer {
                qkv: Linear::new(weight, bias),
                attn_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                ffn_in: w.linear(&format!("{p}.intermediate.dense"), h, ff)?,
                ffn_out: w.linear(&format!("{p}.output.dense"), ff, h)?,
                ffn_norm: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Bert {
            word: w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            token_type: w
                .get(
                    "embeddings.token_type_embeddings.weight",
                    &[cfg.type_vocab_size, h],
                )?
                .get(0)?,
            emb_norm: w.norm("embeddings.LayerNorm", h, eps)?,
            layers,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            max_positions: cfg.max_position_embeddings,
            device: device.clone(),
        })
    }

    /// The hidden width.
    pub fn hidden_size(&self) -> usize {
        self.heads * self.head_dim
    }

    /// The most positions the model has embeddings for.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The last hidden states, `(batch, seq, hidden)`, of right-padded token ids
    /// `(batch, seq)`; `lengths` gives each row's real length (the rest is masked).
    pub fn forward(
        &self,
        ids: &[u32],
        batch: usize,
        seq: usize,
        lengths: &[usize],
    ) -> Result<Tensor> {
        anyhow::ensure!(
            ids.len() == batch * seq && lengths.len() == batch,
            "ids/lengths do not match {batch}x{seq}"
        );
        anyhow::ensure!(
            seq <= self.max_positions,
            "{seq} tokens exceed the {} positions",
            self.max_positions
        );
        let vocab = self.word.dim(0)?;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            anyhow::bail!("token id {bad} is outside the vocabulary ({vocab})");
        }
        let h = self.hidden_size();
        let ids_t = Tensor::from_slice(ids, batch * seq, &self.device)?;
        let mut x = self
            .word
            .index_select(&ids_t, 0)?
            .reshape((batch, seq, h))?
            .broadcast_add(&self.position.narrow(0, 0, seq)?)?
            .broadcast_add(&self.token_type)?;
        x = self.emb_norm.forward(&x)?;
        // Additive mask, as HF builds it: 0 on real tokens, the lowest f32 on padding.
        let bias: Vec<f32> = lengths
            .iter()
            .flat_map(|&n| (0..seq).map(move |j| if j < n { 0.0 } else { f32::MIN }))
            .collect();
        let bias = Tensor::from_vec(bias, (batch, 1, 1, seq), &self.device)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &bias, batch, seq)?;
        }
        Ok(x)
    }

    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        bias: &Tensor,
        batch: usize,
        seq: usize,
    ) -> Result<Tensor> {
        let (nh, hd) = (self.heads, self.head_dim);
        let h = nh * hd;
        let qkv = l.qkv.forward(x)?.reshape((batch, seq, 3, nh, hd))?;
        let split = |i: usize| {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
        let probs = softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, seq, h))?;
        let x = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + x)?)?;
        let ff = l.ffn_out.forward(&l.ffn_in.forward(&x)?.gelu_erf()?)?;
        Ok(l.ffn_norm.forward(&(ff + &x)?)?)
    }
}

/// The hidden states of a `(batch, seq, hidden)` tensor as one flat vector.
pub fn to_vec(hidden: &Tensor) -> Result<Vec<f32>> {
    Ok(hidden.flatten_all()?.to_vec1::<f32>()?)
}
