//! The Noam / Llama decoder: pre-norm RMSNorm, SwiGLU MLP, grouped-query attention
//! with rotary embeddings, no biases.
//!
//! Weights are [`Linear`]s, so the same code runs GGUF quantized weights (the
//! activations are quantized per block inside the matmul, as llama.cpp does) and
//! plain f32/f16/bf16 safetensors. The KV cache is not part of the model: each
//! generation session owns a [`KvCache`], so one loaded model serves many sessions,
//! and [`Llama::forward_batch`] advances several sessions in one pass: the weight
//! matmuls take every session's new rows at once, attention runs per session.
//! Every op works row by row, so a session's results do not depend on what it is
//! batched with.

use super::config::DecoderConfig;
use super::linear::Linear;
use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;
use reka_kernels as k;
use reka_kernels::attention::{self as attn, Heads};

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
    /// Token embeddings, `[vocab, hidden]`, f32 or as the checkpoint stores them.
    pub embeddings: Tensor,
    pub blocks: Vec<Block>,
    pub final_norm: Tensor,
    pub lm_head: Linear,
}

/// A loaded decoder, shareable across sessions.
pub struct Llama {
    cfg: DecoderConfig,
    /// `None` in a decoder made by [`Llama::without_weights`].
    w: Option<Weights>,
    /// Rotary tables `[context, head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    device: Device,
}

/// One session's keys and values: per layer, `[position, kv_heads · head_dim]`
/// rows that grow in place (amortised doubling, never a copy per step).
/// A clone holds the same positions (a forked stream).
#[derive(Clone)]
pub struct KvCache {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    len: usize,
    row: usize,
}

impl KvCache {
    /// An empty cache for `num_layers` layers of `row` floats per position.
    pub fn new(num_layers: usize, row: usize) -> Self {
        Self {
            layers: (0..num_layers).map(|_| (Vec::new(), Vec::new())).collect(),
            len: 0,
            row,
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

    /// Bytes of keys and values per position.
    pub fn bytes_per_position(&self) -> usize {
        self.layers.len() * 2 * self.row * 4
    }

    /// A new cache holding this one's first `len` positions (all it has, if
    /// fewer), with room for `more` after them.
    pub fn prefix(&self, len: usize, more: usize) -> KvCache {
        let len = len.min(self.len);
        let n = len * self.row;
        let copy = |v: &Vec<f32>| {
            let mut c = Vec::with_capacity((len + more) * self.row);
            c.extend_from_slice(&v[..n]);
            c
        };
        Self { layers: self.layers.iter().map(|(k, v)| (copy(k), copy(v))).collect(), len, row: self.row }
    }

    /// Makes room for `n` more positions in every layer.
    /// Gives back the room reserved past the cached positions, so that a cache
    /// kept for later (the prefix cache) holds only what its length counts.
    pub fn shrink_to_fit(&mut self) {
        for (k, v) in &mut self.layers {
            k.shrink_to_fit();
            v.shrink_to_fit();
        }
    }

    pub fn reserve(&mut self, n: usize) {
        for (k, v) in &mut self.layers {
            k.reserve(n * self.row);
            v.reserve(n * self.row);
        }
    }
}

/// One session's part of a batched step: the new token ids and its cache.
pub struct Step<'a> {
    pub ids: &'a [u32],
    pub cache: &'a mut KvCache,
    /// Rows of `ids` whose input embedding is given (media placeholders):
    /// `(row, [hidden] values)`.
    pub embeds: Vec<(usize, &'a [f32])>,
    /// Return the logits of every row of `ids`, not only the last (prompt
    /// log-probs).
    pub all_rows: bool,
}

impl<'a> Step<'a> {
    /// A step of plain tokens.
    pub fn tokens(ids: &'a [u32], cache: &'a mut KvCache) -> Self {
        Self { ids, cache, embeds: Vec::new(), all_rows: false }
    }
}

impl Llama {
    /// Builds the decoder; precomputes the rotary tables for the whole context.
    pub fn new(cfg: DecoderConfig, w: Weights, device: &Device) -> Result<Self> {
        let (cos, sin) = cfg.rope_tables();
        Ok(Self { cos, sin, cfg, w: Some(w), device: device.clone() })
    }

    /// The same decoder's shape without its weights, for a model whose decoder
    /// runs elsewhere (the GPU): it answers shape questions and makes caches,
    /// and its forward passes fail with an error that says why. Dropping the
    /// original then frees the host's copy of the weights.
    pub fn without_weights(&self) -> Self {
        Self { cfg: self.cfg.clone(), w: None, cos: Vec::new(), sin: Vec::new(), device: self.device.clone() }
    }

    /// Whether this decoder holds its weights (see [`Llama::without_weights`]).
    pub fn has_weights(&self) -> bool {
        self.w.is_some()
    }

    fn weights(&self) -> Result<&Weights> {
        self.w.as_ref().ok_or_else(|| candle_core::Error::Msg("this decoder's weights are not on the CPU (it runs on the GPU)".into()))
    }

    /// How the output projection's weights are held (see [`Linear::kind`]).
    pub fn lm_head_kind(&self) -> &'static str {
        self.w.as_ref().map_or("none", |w| w.lm_head.kind())
    }

    /// The kernels this decoder's linears run (see [`Linear::kernel`]), with how
    /// many linears use each.
    pub fn kernels(&self) -> std::collections::BTreeMap<String, usize> {
        let mut all = std::collections::BTreeMap::new();
        if let Some(w) = &self.w {
            let ls = w.blocks.iter().flat_map(|b| [&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down]);
            for l in ls.chain([&w.lm_head]) {
                *all.entry(l.kernel()).or_insert(0) += 1;
            }
        }
        all
    }

    /// Root mean square of the token embeddings' values: the scale that
    /// injected (media) embeddings are brought to.
    pub fn embedding_rms(&self) -> Result<f32> {
        let e = self.weights()?.embeddings.to_dtype(DType::F32)?;
        e.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()
    }

    /// The decoder's shape.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// A fresh cache for one session.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.num_layers, self.cfg.num_kv_heads * self.cfg.head_dim)
    }

    /// Appends `ids` to the session in `cache` and returns the logits of the last
    /// position, `[vocab]` f32. The caller checks that the context has room.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let mut out = self.forward_batch(&mut [Step::tokens(ids, cache)])?;
        Tensor::from_vec(out.swap_remove(0), self.cfg.vocab_size, &self.device)
    }

    /// Appends each step's ids to its session and returns, per step, the logits
    /// of its last position (of every position, `[rows · vocab]`, for a step
    /// with `all_rows`). Steps must have at least one id each.
    pub fn forward_batch(&self, steps: &mut [Step<'_>]) -> Result<Vec<Vec<f32>>> {
        // Run the whole step on a rayon worker: the matmuls inside then split
        // their rows over the pool directly instead of each injecting a job from
        // outside, and the other workers poll for those rows through the step
        // instead of falling asleep between them (hundreds of times per token).
        reka_kernels::awake::run(|| self.forward_inner(steps))
    }

    fn forward_inner(&self, steps: &mut [Step<'_>]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<u32> = steps.iter().flat_map(|s| s.ids.iter().copied()).collect();
        let pos: Vec<usize> = steps
            .iter()
            .flat_map(|s| s.cache.len..s.cache.len + s.ids.len())
            .collect();
        let w = self.weights()?;
        let ids_t = Tensor::new(ids.as_slice(), &self.device)?;
        let mut x = w.embeddings.embedding(&ids_t)?.to_dtype(DType::F32)?; // [rows, hidden]
        if steps.iter().any(|s| !s.embeds.is_empty()) {
            x = self.place_embeds(x, steps)?;
        }
        for (i, b) in w.blocks.iter().enumerate() {
            let h = k::rms_norm(&x, &b.attn_norm, self.cfg.rms_norm_eps as f32)?;
            let a = self.attention(i, b, &h, &pos, steps)?;
            x = (x + a)?;
            let h = k::rms_norm(&x, &b.ffn_norm, self.cfg.rms_norm_eps as f32)?;
            let m = b.w_down.forward(&self.gated(b, &h)?)?;
            x = (x + m)?;
        }
        // The rows the LM head reads: each step's last, or all of its rows.
        let mut rows = Vec::with_capacity(steps.len());
        let mut counts = Vec::with_capacity(steps.len());
        let mut end = 0;
        for s in steps.iter_mut() {
            s.cache.len += s.ids.len();
            let n = if s.all_rows { s.ids.len() } else { 1 };
            rows.push(x.narrow(0, end + s.ids.len() - n, n)?);
            counts.push(n);
            end += s.ids.len();
        }
        let rows = Tensor::cat(&rows, 0)?;
        let rows = k::rms_norm(&rows, &w.final_norm, self.cfg.rms_norm_eps as f32)?;
        let logits: Vec<f32> = w.lm_head.forward(&rows)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let vocab = logits.len() / counts.iter().sum::<usize>().max(1);
        let mut at = 0;
        Ok(counts
            .into_iter()
            .map(|n| {
                at += n * vocab;
                logits[at - n * vocab..at].to_vec()
            })
            .collect())
    }

    /// The MLP's `silu(gate(h)) · up(h)`, both projections in one pass.
    fn gated(&self, b: &Block, h: &Tensor) -> Result<Tensor> {
        let [mut g, u]: [Vec<f32>; 2] = super::linear::forward_many(&[&b.w_gate, &b.w_up], h)?
            .try_into()
            .map_err(|_| candle_core::Error::Msg("two projections expected".into()))?;
        k::swiglu_rows(&mut g, &u);
        let rows = h.dim(0)?;
        let cols = g.len() / rows.max(1);
        Tensor::from_vec(g, (rows, cols), &self.device)
    }

    /// `x` `[rows, hidden]` with the steps' given embeddings in their rows.
    fn place_embeds(&self, x: Tensor, steps: &[Step<'_>]) -> Result<Tensor> {
        let hidden = self.cfg.hidden_size;
        let rows = x.dim(0)?;
        let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut base = 0;
        for s in steps {
            for &(r, e) in &s.embeds {
                if r >= s.ids.len() || e.len() != hidden {
                    candle_core::bail!("media embedding for row {r} of {} has {} values, not {hidden}", s.ids.len(), e.len());
                }
                v[(base + r) * hidden..(base + r + 1) * hidden].copy_from_slice(e);
            }
            base += s.ids.len();
        }
        Tensor::from_vec(v, (rows, hidden), &self.device)
    }

    /// Self-attention of layer `layer` for all steps' rows `h` `[rows, hidden]`
    /// at positions `pos`.
    fn attention(&self, layer: usize, b: &Block, h: &Tensor, pos: &[usize], steps: &mut [Step<'_>]) -> Result<Tensor> {
        let c = &self.cfg;
        let heads = Heads {
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            round_probs: c.attn_f16,
        };
        let [mut q, mut kk, v]: [Vec<f32>; 3] = super::linear::forward_many(&[&b.wq, &b.wk, &b.wv], h)?
            .try_into()
            .map_err(|_| candle_core::Error::Msg("three projections expected".into()))?;
        attn::rope_rows(&mut q, c.head_dim, c.rotary_dim, pos, &self.cos, &self.sin, c.rope_style);
        attn::rope_rows(&mut kk, c.head_dim, c.rotary_dim, pos, &self.cos, &self.sin, c.rope_style);
        let mut v = v;
        if c.attn_f16 {
            // llama.cpp keeps the KV cache, the queries and the attention weights
            // at f16 by default.
            for x in [&mut q, &mut kk, &mut v] {
                attn::round_f16(x);
            }
        }
        let (qw, kvw) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        // Split the rows per step, then attend per step in parallel.
        let many = steps.len() >= 2 * rayon::current_num_threads();
        let mut work = Vec::with_capacity(steps.len());
        let (mut qs, mut ks, mut vs) = (q.as_slice(), kk.as_slice(), v.as_slice());
        for s in steps.iter_mut() {
            let n = s.ids.len();
            let (q1, q2) = qs.split_at(n * qw);
            let (k1, k2) = ks.split_at(n * kvw);
            let (v1, v2) = vs.split_at(n * kvw);
            (qs, ks, vs) = (q2, k2, v2);
            work.push((q1, k1, v1, &mut *s.cache));
        }
        // With several sessions at once, a session's single decode row is one
        // task: its heads are too little work to share out again.
        let outs: Vec<Vec<f32>> = work
            .into_par_iter()
            .map(|(q1, k1, v1, cache)| {
                let start = cache.len;
                let (kc, vc) = &mut cache.layers[layer];
                kc.extend_from_slice(k1);
                vc.extend_from_slice(v1);
                let rows = q1.len() / qw;
                attn::attention_with(heads, q1, rows, kc, vc, start, !(many && rows == 1))
            })
            .collect();
        let y = Tensor::from_vec(outs.concat(), (pos.len(), qw), &self.device)?;
        b.wo.forward(&y)
    }
}
