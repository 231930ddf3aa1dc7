//! The Llama / Noam decoder on the GPU: the weights are uploaded once (q|k|v
//! and gate|up fused into one matrix each, so a layer is four GEMVs), every
//! session owns a [`GpuKvCache`] in device memory, and a step runs entirely on
//! the device: embedding, per layer RMSNorm → QKV GEMV → RoPE + KV append →
//! attention → O GEMV (+residual) → RMSNorm → gate|up GEMV → SwiGLU → down GEMV
//! (+residual), then the final norm of each session's last row and the LM head.
//! Only the ids (and media rows) go up and the logits come back.
//!
//! Checkpoint directories run in bf16 with a bf16 cache. GGUF files keep their
//! Q4_0/Q4_1/Q8_0 blocks, quantize activations to 8 bits per block, and keep
//! the cache in f16 with llama.cpp's rounding, exactly the CPU build's
//! numerics, so both builds pick the same tokens.
//!
//! [`GpuLlama::forward_batch`] mirrors the CPU [`crate::model::Llama`]: any mix
//! of prompt chunks and single decode tokens from several sessions in one pass.

use super::load::{self, HostWeights};
use super::weights::GpuMatrix;
use crate::model::config::DecoderConfig;
use anyhow::{bail, Context, Result};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DevicePtr};
use reka_kernels::cuda::{AttnShape, Gpu, KvType, Q8Acts};
use std::path::Path;

struct GpuBlock {
    attn_norm: CudaSlice<f32>,
    wqkv: GpuMatrix,
    wo: GpuMatrix,
    ffn_norm: CudaSlice<f32>,
    w_gate_up: GpuMatrix,
    w_down: GpuMatrix,
}

/// A decoder whose weights live on one GPU, shareable by many sessions.
pub struct GpuLlama {
    gpu: Gpu,
    cfg: DecoderConfig,
    shape: AttnShape,
    kv: KvType,
    blocks: Vec<GpuBlock>,
    embed: GpuMatrix,
    final_norm: CudaSlice<f32>,
    /// `None` when tied to the embeddings.
    lm_head: Option<GpuMatrix>,
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
    weight_bytes: usize,
}

/// One session's keys and values on the device: `[layer][K, V][capacity]
/// [kv_heads · head_dim]` 16-bit values; grows (by copying) when a step needs
/// more room.
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
    /// Positions it can hold before it grows.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// One session's part of a batched step: new token ids, its cache, and the
/// rows whose input embedding is given (media): `(row, [hidden] values)`.
pub struct GpuStep<'a> {
    pub ids: &'a [u32],
    pub cache: &'a mut GpuKvCache,
    pub embeds: Vec<(usize, &'a [f32])>,
}

impl<'a> GpuStep<'a> {
    /// A step of plain tokens.
    pub fn tokens(ids: &'a [u32], cache: &'a mut GpuKvCache) -> Self {
        Self { ids, cache, embeds: Vec::new() }
    }
}

impl GpuLlama {
    /// Opens GPU 0 and loads the checkpoint directory `dir` onto it.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(Gpu::open(0)?, dir)
    }

    /// Loads the checkpoint directory `dir` (bf16, or f16/f32 narrowed to
    /// bf16) onto `gpu`.
    pub fn load_on(gpu: Gpu, dir: &Path) -> Result<Self> {
        Self::upload(gpu, load::from_checkpoint(dir)?, KvType::Bf16)
    }

    /// Loads the GGUF file `path`, whose decoder is shaped `cfg`, onto `gpu`.
    pub fn load_gguf(gpu: Gpu, path: &Path, cfg: &DecoderConfig) -> Result<Self> {
        let kv = if cfg.attn_f16 { KvType::F16 } else { KvType::Bf16 };
        Self::upload(gpu, load::from_gguf(path, cfg)?, kv)
    }

    /// Loads what the CPU build loaded from `path` (a GGUF file or a checkpoint
    /// directory) onto `gpu`.
    pub fn load_like(gpu: Gpu, path: &Path, cpu: &DecoderConfig) -> Result<Self> {
        if path.is_dir() {
            Self::load_on(gpu, path)
        } else {
            Self::load_gguf(gpu, path, cpu)
        }
    }

    fn upload(gpu: Gpu, w: HostWeights, kv: KvType) -> Result<Self> {
        let cfg = w.cfg;
        let shape = AttnShape { heads: cfg.num_heads, kv_heads: cfg.num_kv_heads, head_dim: cfg.head_dim };
        shape.check()?;
        let s = gpu.stream().clone();
        let mut blocks = Vec::with_capacity(w.blocks.len());
        for b in w.blocks {
            blocks.push(GpuBlock {
                attn_norm: s.clone_htod(&b.attn_norm)?,
                wqkv: b.wqkv.upload(&s)?,
                wo: b.wo.upload(&s)?,
                ffn_norm: s.clone_htod(&b.ffn_norm)?,
                w_gate_up: b.w_gate_up.upload(&s)?,
                w_down: b.w_down.upload(&s)?,
            });
        }
        let embed = w.embed.upload(&s)?;
        let lm_head = w.lm_head.map(|m| m.upload(&s)).transpose()?;
        let (cos, sin) = cfg.rope_tables();
        let (cos, sin) = (s.clone_htod(&cos)?, s.clone_htod(&sin)?);
        let final_norm = s.clone_htod(&w.final_norm)?;
        gpu.synchronize()?;
        let weight_bytes = blocks.iter().map(|b| b.wqkv.bytes() + b.wo.bytes() + b.w_gate_up.bytes() + b.w_down.bytes()).sum::<usize>()
            + embed.bytes()
            + lm_head.as_ref().map_or(0, GpuMatrix::bytes);
        Ok(Self { gpu, cfg, shape, kv, blocks, embed, final_norm, lm_head, cos, sin, weight_bytes })
    }

    /// The decoder's shape.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Device bytes of the weights.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// How the KV cache is kept.
    pub fn kv_type(&self) -> KvType {
        self.kv
    }

    /// Device bytes of one session's cache per position.
    pub fn cache_bytes_per_position(&self) -> usize {
        self.cfg.num_layers * 2 * self.shape.kv_width() * 2
    }

    /// A cache for one session with room for `capacity` positions (at most the
    /// context length); it grows when a step needs more.
    pub fn new_cache(&self, capacity: usize) -> Result<GpuKvCache> {
        let capacity = capacity.min(self.cfg.context_length).max(1);
        let n = self.cfg.num_layers * 2 * capacity * self.shape.kv_width();
        Ok(GpuKvCache { buf: self.gpu.stream().alloc_zeros::<u16>(n)?, capacity, len: 0 })
    }

    /// Makes room in `cache` for `need` positions in all: a larger buffer (at
    /// least double, at most the context), the held positions copied over.
    fn grow(&self, cache: &mut GpuKvCache, need: usize) -> Result<()> {
        if need <= cache.capacity {
            return Ok(());
        }
        if need > self.cfg.context_length {
            bail!("the session needs {need} positions; the context holds {}", self.cfg.context_length);
        }
        let cap = need.max(2 * cache.capacity).min(self.cfg.context_length);
        let mut bigger = self.new_cache(cap)?;
        let kvw = self.shape.kv_width();
        let s = self.gpu.stream();
        for plane in 0..self.cfg.num_layers * 2 {
            let src = cache.buf.slice(plane * cache.capacity * kvw..(plane * cache.capacity + cache.len) * kvw);
            let mut dst = bigger.buf.slice_mut(plane * cap * kvw..(plane * cap + cache.len) * kvw);
            s.memcpy_dtod(&src, &mut dst)?;
        }
        bigger.len = cache.len;
        *cache = bigger;
        Ok(())
    }

    /// Appends `ids` to the session in `cache`; returns the last position's
    /// logits, `[vocab]` f32.
    pub fn forward(&self, ids: &[u32], cache: &mut GpuKvCache) -> Result<Vec<f32>> {
        let mut out = self.forward_batch(&mut [GpuStep::tokens(ids, cache)])?;
        out.pop().context("no logits")
    }

    /// `y (+)= W · x` for `n` rows; block weights quantize `x` into `q8` first.
    #[allow(clippy::too_many_arguments)]
    fn matvec(&self, m: &GpuMatrix, x: &CudaView<'_, f32>, n: usize, y: &mut CudaViewMut<'_, f32>, acc: bool, q8: &mut Q8Acts) -> Result<()> {
        let g = &self.gpu;
        match m {
            GpuMatrix::Half { bits, rows, cols, data } => g.gemv(*bits, &data.as_view(), *rows, *cols, x, n, y, acc)?,
            GpuMatrix::Blocks { qtype, rows, cols, data } => {
                g.quantize_q8(x, n, *cols, q8)?;
                g.gemv_q(*qtype, &data.as_view(), *rows, *cols, q8, n, y, acc)?;
            }
        }
        Ok(())
    }

    /// Appends each step's ids to its session; returns, per step, the logits of
    /// its last position. Every step needs at least one id; caches grow as needed.
    pub fn forward_batch(&self, steps: &mut [GpuStep<'_>]) -> Result<Vec<Vec<f32>>> {
        let c = &self.cfg;
        let (h, ff, vocab, shape) = (c.hidden_size, c.intermediate_size, c.vocab_size, self.shape);
        for st in steps.iter_mut() {
            if st.ids.is_empty() {
                bail!("a step with no token ids");
            }
            self.grow(st.cache, st.cache.len + st.ids.len())?;
        }
        let (mut ids, mut meta, mut ptrs, mut last) = (vec![], vec![], vec![], vec![]);
        let s = self.gpu.stream();
        for st in steps.iter() {
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
        let mut q8 = Q8Acts::new(s, n * h.max(ff).max(shape.q_width()))?;
        let g = &self.gpu;
        let eps = c.rms_norm_eps as f32;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let round = self.kv == KvType::F16;
        match &self.embed {
            GpuMatrix::Half { bits, data, .. } => g.embedding(*bits, data, &ids, &mut x.as_view_mut(), h, n)?,
            GpuMatrix::Blocks { qtype, data, .. } => g.embedding_q(*qtype, data, &ids, &mut x.as_view_mut(), h, n)?,
        }
        self.place_embeds(steps, &mut x)?;
        for (l, b) in self.blocks.iter().enumerate() {
            g.rms_norm(&x.as_view(), &b.attn_norm, &mut hb.as_view_mut(), None, n, h, eps)?;
            self.matvec(&b.wqkv, &hb.as_view(), n, &mut qkv.as_view_mut(), false, &mut q8)?;
            g.rope_kv_append(self.kv, &mut qkv.as_view_mut(), &self.cos, &self.sin, &meta, &ptrs, n, l, shape, c.rope_style)?;
            g.attention(self.kv, round, &qkv.as_view(), &mut att.as_view_mut(), &meta, &ptrs, n, l, shape, scale)?;
            self.matvec(&b.wo, &att.as_view(), n, &mut x.as_view_mut(), true, &mut q8)?;
            g.rms_norm(&x.as_view(), &b.ffn_norm, &mut hb.as_view_mut(), None, n, h, eps)?;
            self.matvec(&b.w_gate_up, &hb.as_view(), n, &mut gu.as_view_mut(), false, &mut q8)?;
            g.swiglu(&gu.as_view(), &mut act.as_view_mut(), ff, n)?;
            self.matvec(&b.w_down, &act.as_view(), n, &mut x.as_view_mut(), true, &mut q8)?;
        }
        let mut lastx = s.alloc_zeros::<f32>(ns * h)?;
        g.rms_norm(&x.as_view(), &self.final_norm, &mut lastx.as_view_mut(), Some(&last), ns, h, eps)?;
        let mut logits = s.alloc_zeros::<f32>(ns * vocab)?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        self.matvec(head, &lastx.as_view(), ns, &mut logits.as_view_mut(), false, &mut q8)?;
        let all = s.clone_dtoh(&logits)?;
        for st in steps.iter_mut() {
            st.cache.len += st.ids.len();
        }
        Ok(all.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }

    /// Writes the steps' given embeddings (media) over their rows of `x`.
    fn place_embeds(&self, steps: &[GpuStep<'_>], x: &mut CudaSlice<f32>) -> Result<()> {
        let h = self.cfg.hidden_size;
        let mut base = 0;
        for st in steps {
            for &(r, e) in &st.embeds {
                if r >= st.ids.len() || e.len() != h {
                    bail!("media embedding for row {r} of {} has {} values, not {h}", st.ids.len(), e.len());
                }
                let at = (base + r) * h;
                self.gpu.stream().memcpy_htod(e, &mut x.slice_mut(at..at + h))?;
            }
            base += st.ids.len();
        }
        Ok(())
    }
}
