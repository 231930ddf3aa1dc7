//! The Noam / Llama decoder: pre-norm RMSNorm, SwiGLU MLP, grouped-query attention
//! with rotary embeddings, no biases.
//!
//! Weights are [`Linear`]s, so the same code runs GGUF quantized weights (the
//! activations are quantized per block inside the matmul, as llama.cpp does) and
//! plain f32/f16/bf16 safetensors. The KV cache is not part of the model: each
//! generation session owns a [`KvCache`], so one loaded model serves many sessions.

use super::config::DecoderConfig;
use super::linear::Linear;
use candle_core::{DType, Device, Result, Tensor, D};
use reka_kernels as k;

/// One decoder block.
pub struct Block {
    pub attn_norm: Tensor,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    pub ffn_norm: Tensor,
    pub w_gate: Linear,
    pub w_up: Linear,
    pub w_down: Linear,
}

/// The weights of a decoder, as the loaders hand them over.
pub struct Weights {
    /// Token embeddings, `[vocab, hidden]`, f32.
    pub embeddings: Tensor,
    pub blocks: Vec<Block>,
    pub final_norm: Tensor,
    pub lm_head: Linear,
}

/// A loaded decoder, shareable across sessions.
pub struct Llama {
    cfg: DecoderConfig,
    w: Weights,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// One session's keys and values, per layer `[kv_heads, seq, head_dim]`.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: (0..num_layers).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Number of positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let kv = match self.layers[layer].take() {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 1)?, Tensor::cat(&[&pv, &v], 1)?),
        };
        self.layers[layer] = Some(kv.clone());
        Ok(kv)
    }
}

impl Llama {
    /// Builds the decoder; precomputes the rotary tables for the whole context.
    pub fn new(cfg: DecoderConfig, w: Weights, device: &Device) -> Result<Self> {
        let inv = Tensor::new(cfg.rope_inv_freq(), device)?;
        let pos = Tensor::arange(0u32, cfg.context_length as u32, device)?.to_dtype(DType::F32)?;
        let angles = pos
            .reshape((cfg.context_length, 1))?
            .broadcast_mul(&inv.reshape((1, cfg.head_dim / 2))?)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
            cfg,
            w,
            device: device.clone(),
        })
    }

    /// The decoder's shape.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// A fresh cache for one session.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.num_layers)
    }

    /// Appends `ids` to the session in `cache` and returns the logits of the last
    /// position, `[vocab]` f32. The caller checks that the context has room.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        // Run the whole step on a rayon worker: the matmuls inside then split
        // their rows over the pool directly instead of each injecting a job from
        // outside and waking the pool up again (hundreds of times per token).
        rayon::scope(|_| self.forward_inner(ids, cache))
    }

    fn forward_inner(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let t = ids.len();
        let pos = cache.len;
        let ids_t = Tensor::new(ids, &self.device)?;
        let mut x = self.w.embeddings.embedding(&ids_t)?; // [t, hidden]
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        let mask = if t > 1 {
            Some(self.causal_mask(t, pos)?)
        } else {
            None
        };
        for (i, b) in self.w.blocks.iter().enumerate() {
            let h = k::rms_norm(&x, &b.attn_norm, self.cfg.rms_norm_eps as f32)?;
            let a = self.attention(i, b, &h, &cos, &sin, mask.as_ref(), cache)?;
            x = (x + a)?;
            let h = k::rms_norm(&x, &b.ffn_norm, self.cfg.rms_norm_eps as f32)?;
            let m = b
                .w_down
                .forward(&k::swiglu(&b.w_gate.forward(&h)?, &b.w_up.forward(&h)?)?)?;
            x = (x + m)?;
        }
        cache.len += t;
        let last = x.narrow(0, t - 1, 1)?;
        let last = k::rms_norm(&last, &self.w.final_norm, self.cfg.rms_norm_eps as f32)?;
        self.w.lm_head.forward(&last)?.squeeze(0)?.to_dtype(DType::F32)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: usize,
        b: &Block,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let t = h.dim(0)?;
        let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let heads = |w: &Linear, n: usize| -> Result<Tensor> {
            w.forward(h)?.reshape((1, t, n, hd))?.transpose(1, 2)
        };
        let q = self.round(&k::rope(&heads(&b.wq, nh)?, cos, sin, c.rope_style)?.squeeze(0)?)?;
        let kk = self.round(&k::rope(&heads(&b.wk, nkv)?, cos, sin, c.rope_style)?.squeeze(0)?)?;
        let v = self.round(&heads(&b.wv, nkv)?.squeeze(0)?.contiguous()?)?;
        let (kk, v) = cache.append(layer, kk.contiguous()?, v)?; // [nkv, s, hd]
        let s = kk.dim(1)?;
        // Grouped-query attention without copying K/V per head: the `rep` query heads
        // that share a KV head are stacked along the sequence axis.
        let rep = nh / nkv;
        let q = q.reshape((nkv, rep * t, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut scores = (q.matmul(&kk.t()?)? * scale)?; // [nkv, rep*t, s]
        if let Some(m) = mask {
            let m = m.repeat((rep, 1))?; // [rep*t, s]
            scores = scores.broadcast_add(&m)?;
        }
        debug_assert_eq!(scores.dim(D::Minus1)?, s);
        let p = self.round(&k::softmax_last_dim(&scores)?)?;
        let y = p.matmul(&v)?; // [nkv, rep*t, hd]
        let y = y.reshape((nh, t, hd))?.transpose(0, 1)?.reshape((t, nh * hd))?;
        b.wo.forward(&y)
    }

    /// Rounds to f16 precision and back when the config asks for it: llama.cpp keeps
    /// the KV cache, the queries and the attention weights at f16 by default.
    fn round(&self, x: &Tensor) -> Result<Tensor> {
        if self.cfg.attn_f16 {
            x.to_dtype(DType::F16)?.to_dtype(DType::F32)
        } else {
            Ok(x.clone())
        }
    }

    /// `[t, pos + t]`: 0 where a query may look, -inf past its own position.
    fn causal_mask(&self, t: usize, pos: usize) -> Result<Tensor> {
        let s = pos + t;
        let m: Vec<f32> = (0..t)
            .flat_map(|i| (0..s).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        Tensor::from_vec(m, (t, s), &self.device)
    }
}
