//! The Llama / Noam decoder on the GPU, for Hugging Face bf16 checkpoints: the
//! weights are uploaded once (q|k|v and gate|up fused into one matrix each, so
//! a layer is four GEMVs), every session owns a [`GpuKvCache`] in device memory,
//! and a step runs entirely on the device: embedding, per layer RMSNorm → QKV
//! GEMV → RoPE + KV append → attention → O GEMV (+residual) → RMSNorm → gate|up
//! GEMV → SwiGLU → down GEMV (+residual), then the final norm of each session's
//! last row and the LM head. Only the ids go up and the logits come back.
//!
//! [`GpuLlama::forward_batch`] mirrors the CPU [`crate::model::Llama`]: any mix
//! of prompt chunks and single decode tokens from several sessions in one pass.

use crate::model::config::{DecoderConfig, HfLlamaConfig};
use crate::model::st_reader::Checkpoint;
use anyhow::{bail, Context, Result};
use cudarc::driver::{CudaSlice, DevicePtr};
use reka_kernels::cuda::{AttnShape, Gpu};
use reka_kernels::half_matmul::HalfType;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

struct GpuBlock {
    attn_norm: CudaSlice<f32>,
    wqkv: CudaSlice<u16>,
    wo: CudaSlice<u16>,
    ffn_norm: CudaSlice<f32>,
    w_gate_up: CudaSlice<u16>,
    w_down: CudaSlice<u16>,
}

/// A decoder whose weights live on one GPU, shareable by many sessions.
pub struct GpuLlama {
    gpu: Gpu,
    cfg: DecoderConfig,
    shape: AttnShape,
    blocks: Vec<GpuBlock>,
    embed: CudaSlice<u16>,
    final_norm: CudaSlice<f32>,
    /// `None` when tied to the embeddings.
    lm_head: Option<CudaSlice<u16>>,
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
}

/// One session's keys and values on the device: `[layer][K, V][capacity]
/// [kv_heads · head_dim]` bf16, allocated once for `capacity` positions.
pub struct GpuKvCache {
    buf: CudaSlice<u16>,
    capacity: usize,
    len: usize,
}

impl GpuKvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no position is held yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Positions it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// One session's part of a batched step: new token ids and its cache.
pub struct GpuStep<'a> {
    pub ids: &'a [u32],
    pub cache: &'a mut GpuKvCache,
}

/// The safetensors files of a checkpoint directory.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index)?)?;
        let map = v.get("weight_map").and_then(|m| m.as_object()).context("index has no weight_map")?;
        let names: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(names.into_iter().map(|n| dir.join(n)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    bail!("{} has neither model.safetensors nor model.safetensors.index.json (the GPU path reads Hugging Face checkpoint directories)", dir.display())
}

impl GpuLlama {
    /// Opens GPU 0 and loads the checkpoint directory `dir` onto it.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(Gpu::open(0)?, dir)
    }

    /// Loads the checkpoint directory `dir` (bf16, or f16/f32 narrowed to
    /// bf16) onto `gpu`.
    pub fn load_on(gpu: Gpu, dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join("config.json")).context("reading config.json")?;
        let hf: HfLlamaConfig = serde_json::from_str(&text).context("parsing config.json")?;
        let cfg = hf.decoder();
        let shape = AttnShape { heads: cfg.num_heads, kv_heads: cfg.num_kv_heads, head_dim: cfg.head_dim };
        shape.check()?;
        let (h, ff, vocab) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        if !h.is_multiple_of(8) || !ff.is_multiple_of(8) || !shape.q_width().is_multiple_of(8) {
            bail!("the GPU GEMV needs hidden ({h}), intermediate ({ff}) and heads·head_dim to be multiples of 8");
        }
        let ck = Checkpoint::open(&weight_files(dir)?)?;
        let s = gpu.stream().clone();
        let halves = |names: &[(&str, usize, usize)]| -> Result<CudaSlice<u16>> {
            let mut all = Vec::new();
            for &(n, r, c) in names {
                all.extend(ck.halves(n, &[r, c], HalfType::Bf16)?);
            }
            Ok(s.clone_htod(&all)?)
        };
        let norm = |n: &str| -> Result<CudaSlice<f32>> { Ok(s.clone_htod(&ck.f32s(n, &[h])?)?) };
        let (qw, kvw) = (shape.q_width(), shape.kv_width());
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = format!("model.layers.{i}");
            let a = |x: &str| format!("{p}.self_attn.{x}_proj.weight");
            let m = |x: &str| format!("{p}.mlp.{x}_proj.weight");
            blocks.push(GpuBlock {
                attn_norm: norm(&format!("{p}.input_layernorm.weight"))?,
                wqkv: halves(&[(&a("q"), qw, h), (&a("k"), kvw, h), (&a("v"), kvw, h)])?,
                wo: halves(&[(&a("o"), h, qw)])?,
                ffn_norm: norm(&format!("{p}.post_attention_layernorm.weight"))?,
                w_gate_up: halves(&[(&m("gate"), ff, h), (&m("up"), ff, h)])?,
                w_down: halves(&[(&m("down"), h, ff)])?,
            });
        }
        let embed = halves(&[("model.embed_tokens.weight", vocab, h)])?;
        let lm_head = if hf.tie_word_embeddings || !ck.contains("lm_head.weight") {
            None
        } else {
            Some(halves(&[("lm_head.weight", vocab, h)])?)
        };
        let inv = cfg.rope_inv_freq();
        let half = cfg.head_dim / 2;
        let mut cos = Vec::with_capacity(cfg.context_length * half);
        let mut sin = Vec::with_capacity(cfg.context_length * half);
        for p in 0..cfg.context_length {
            for f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let (cos, sin) = (s.clone_htod(&cos)?, s.clone_htod(&sin)?);
        let final_norm = norm("model.norm.weight")?;
        gpu.synchronize()?;
        Ok(Self { gpu, cfg, shape, blocks, embed, final_norm, lm_head, cos, sin })
    }

    /// The decoder's shape.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Device bytes of one session's cache per position.
    pub fn cache_bytes_per_position(&self) -> usize {
        self.cfg.num_layers * 2 * self.shape.kv_width() * 2
    }

    /// A cache for one session of up to `capacity` positions (at most the
    /// context length).
    pub fn new_cache(&self, capacity: usize) -> Result<GpuKvCache> {
        let capacity = capacity.min(self.cfg.context_length).max(1);
        let n = self.cfg.num_layers * 2 * capacity * self.shape.kv_width();
        Ok(GpuKvCache { buf: self.gpu.stream().alloc_zeros::<u16>(n)?, capacity, len: 0 })
    }

    /// Appends `ids` to the session in `cache`; returns the last position's
    /// logits, `[vocab]` f32.
    pub fn forward(&self, ids: &[u32], cache: &mut GpuKvCache) -> Result<Vec<f32>> {
        let mut out = self.forward_batch(&mut [GpuStep { ids, cache }])?;
        out.pop().context("no logits")
    }

    /// Appends each step's ids to its session; returns, per step, the logits of
    /// its last position. Every step needs at least one id and room in its cache.
    pub fn forward_batch(&self, steps: &mut [GpuStep<'_>]) -> Result<Vec<Vec<f32>>> {
        let c = &self.cfg;
        let (h, ff, vocab, shape) = (c.hidden_size, c.intermediate_size, c.vocab_size, self.shape);
        let (mut ids, mut meta, mut ptrs, mut last) = (vec![], vec![], vec![], vec![]);
        let s = self.gpu.stream();
        for st in steps.iter() {
            if st.ids.is_empty() {
                bail!("a step with no token ids");
            }
            let end = st.cache.len + st.ids.len();
            if end > st.cache.capacity {
                bail!("the session's cache holds {} positions, {end} asked for", st.cache.capacity);
            }
            let (ptr, _sync) = st.cache.buf.device_ptr(s);
            for (i, &id) in st.ids.iter().enumerate() {
                ids.push(i32::try_from(id).context("token id out of range")?);
                meta.extend([i32::try_from(st.cache.len + i)?, i32::try_from(st.cache.capacity)?]);
                ptrs.push(ptr);
            }
            last.push(i32::try_from(ids.len() - 1)?);
        }
        let (n, ns) = (ids.len(), steps.len());
        if n == 0 {
            return Ok(vec![]);
        }
        let (ids, meta, ptrs, last) = (s.clone_htod(&ids)?, s.clone_htod(&meta)?, s.clone_htod(&ptrs)?, s.clone_htod(&last)?);
        let mut x = s.alloc_zeros::<f32>(n * h)?;
        let mut hb = s.alloc_zeros::<f32>(n * h)?;
        let mut qkv = s.alloc_zeros::<f32>(n * shape.qkv_width())?;
        let mut att = s.alloc_zeros::<f32>(n * shape.q_width())?;
        let mut gu = s.alloc_zeros::<f32>(n * 2 * ff)?;
        let mut act = s.alloc_zeros::<f32>(n * ff)?;
        let g = &self.gpu;
        let eps = c.rms_norm_eps as f32;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        g.embedding(&self.embed, &ids, &mut x.as_view_mut(), h, n)?;
        for (l, b) in self.blocks.iter().enumerate() {
            g.rms_norm(&x.as_view(), &b.attn_norm, &mut hb.as_view_mut(), None, n, h, eps)?;
            g.gemv(&b.wqkv.as_view(), shape.qkv_width(), h, &hb.as_view(), n, &mut qkv.as_view_mut(), false)?;
            g.rope_kv_append(&mut qkv.as_view_mut(), &self.cos, &self.sin, &meta, &ptrs, n, l, shape, c.rope_style)?;
            g.attention(&qkv.as_view(), &mut att.as_view_mut(), &meta, &ptrs, n, l, shape, scale)?;
            g.gemv(&b.wo.as_view(), h, shape.q_width(), &att.as_view(), n, &mut x.as_view_mut(), true)?;
            g.rms_norm(&x.as_view(), &b.ffn_norm, &mut hb.as_view_mut(), None, n, h, eps)?;
            g.gemv(&b.w_gate_up.as_view(), 2 * ff, h, &hb.as_view(), n, &mut gu.as_view_mut(), false)?;
            g.swiglu(&gu.as_view(), &mut act.as_view_mut(), ff, n)?;
            g.gemv(&b.w_down.as_view(), h, ff, &act.as_view(), n, &mut x.as_view_mut(), true)?;
        }
        let mut lastx = s.alloc_zeros::<f32>(ns * h)?;
        g.rms_norm(&x.as_view(), &self.final_norm, &mut lastx.as_view_mut(), Some(&last), ns, h, eps)?;
        let mut logits = s.alloc_zeros::<f32>(ns * vocab)?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        g.gemv(&head.as_view(), vocab, h, &lastx.as_view(), ns, &mut logits.as_view_mut(), false)?;
        let all = s.clone_dtoh(&logits)?;
        for st in steps.iter_mut() {
            st.cache.len += st.ids.len();
        }
        Ok(all.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }
}
