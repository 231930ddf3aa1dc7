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
use super::scratch::Scratch;
use super::weights::GpuMatrix;
use crate::model::config::DecoderConfig;
use anyhow::{bail, Context, Result};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DevicePtr};
use reka_kernels::cuda::{AttnShape, Gpu, Graph, KvType, Q8Acts};
use reka_kernels::RopeStyle;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Decode steps of up to this many sessions are replayed from CUDA graphs.
const MAX_GRAPH_ROWS: usize = 64;

/// A captured decode step and the buffers its kernels were captured with.
struct DecodeGraph {
    scratch: Scratch,
    graph: Graph,
}

/// What a forward pass reuses: the eager path's buffers and the decode graphs.
#[derive(Default)]
struct Runtime {
    eager: Option<Scratch>,
    graphs: HashMap<usize, DecodeGraph>,
    /// Set when graphs are switched off, or a capture failed (then every step
    /// runs eagerly).
    graphs_off: bool,
}

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
    rt: Mutex<Runtime>,
    /// Attention over one block per (row, kv head) only, without the
    /// flash-decoding splits (the bench compares both).
    unsplit: AtomicBool,
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
    /// Return the logits of every row, not only the last (prompt log-probs).
    pub all_rows: bool,
}

impl<'a> GpuStep<'a> {
    /// A step of plain tokens.
    pub fn tokens(ids: &'a [u32], cache: &'a mut GpuKvCache) -> Self {
        Self { ids, cache, embeds: Vec::new(), all_rows: false }
    }
}

impl GpuLlama {
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
        // A stream per decoder: its engine thread is the only one that queues
        // work on it, which a graph capture needs.
        let gpu = gpu.with_own_stream()?;
        let cfg = w.cfg;
        if cfg.rotary_dim < cfg.head_dim && cfg.rope_style == RopeStyle::Halves {
            bail!("partial rotary ({} of {} dims) in the rotate-half layout is not in the CUDA decoder yet; serve with --device cpu", cfg.rotary_dim, cfg.head_dim);
        }
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
        let graphs_off = std::env::var("REKA_CUDA_GRAPHS").is_ok_and(|v| v == "0");
        let rt = Mutex::new(Runtime { graphs_off, ..Runtime::default() });
        Ok(Self { gpu, cfg, shape, kv, blocks, embed, final_norm, lm_head, cos, sin, rt, unsplit: AtomicBool::new(false) })
    }

    /// The decoder's shape.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Device bytes of the blocks' matrices.
    fn block_bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.wqkv.bytes() + b.wo.bytes() + b.w_gate_up.bytes() + b.w_down.bytes()).sum()
    }

    /// Device bytes of the weight matrices.
    pub fn weight_bytes(&self) -> usize {
        self.block_bytes() + self.embed.bytes() + self.lm_head.as_ref().map_or(0, GpuMatrix::bytes)
    }

    /// Device bytes of weights one decode step reads: every block matrix, the
    /// LM head, and one embedding row (the whole table when it is the head).
    pub fn decode_bytes_per_token(&self) -> usize {
        match &self.lm_head {
            Some(head) => self.block_bytes() + head.bytes() + self.embed.bytes() / self.cfg.vocab_size.max(1),
            None => self.block_bytes() + self.embed.bytes(),
        }
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
        *cache = self.copy_of(cache, cap)?;
        Ok(())
    }

    /// A new cache of `cap` positions holding `cache`'s positions (a grown
    /// cache, or a forked stream).
    pub fn copy_of(&self, cache: &GpuKvCache, cap: usize) -> Result<GpuKvCache> {
        let mut copy = self.new_cache(cap.max(cache.len))?;
        let cap = copy.capacity;
        let kvw = self.shape.kv_width();
        let s = self.gpu.stream();
        for plane in 0..self.cfg.num_layers * 2 {
            let src = cache.buf.slice(plane * cache.capacity * kvw..(plane * cache.capacity + cache.len) * kvw);
            let mut dst = copy.buf.slice_mut(plane * cap * kvw..(plane * cap + cache.len) * kvw);
            s.memcpy_dtod(&src, &mut dst)?;
        }
        copy.len = cache.len;
        Ok(copy)
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

    /// Whether decode steps are replayed from CUDA graphs (on unless
    /// `REKA_CUDA_GRAPHS=0`, or a capture failed).
    pub fn graphs(&self) -> bool {
        !self.runtime().graphs_off
    }

    /// Switches the decode graphs on or off (the bench measures both).
    pub fn set_graphs(&self, on: bool) {
        let mut rt = self.runtime();
        rt.graphs_off = !on;
        if !on {
            rt.graphs.clear();
        }
    }

    /// Switches the attention's position splits (flash-decoding) on or off;
    /// on by default. Captured graphs are dropped, since they hold the split
    /// count.
    pub fn set_split_attention(&self, on: bool) {
        let mut rt = self.runtime();
        self.unsplit.store(!on, Ordering::Relaxed);
        rt.graphs.clear();
    }

    fn runtime(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.rt.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends each step's ids to its session; returns, per step, the logits of
    /// its last position (of all its positions with `all_rows`). Every step needs at least one id; caches grow as needed.
    /// A step of single decode tokens without media replays a CUDA graph
    /// captured for its number of sessions; any other step runs eagerly.
    pub fn forward_batch(&self, steps: &mut [GpuStep<'_>]) -> Result<Vec<Vec<f32>>> {
        // One pass at a time. The decoder is meant for one engine thread (its
        // caches are made and dropped there too): work queued on its stream by
        // another thread during a graph capture would join the capture.
        let mut rt = self.runtime();
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
            // The rows the LM head reads: the last, or all (prompt log-probs).
            let n = if st.all_rows { st.ids.len() } else { 1 };
            for r in ids.len() - n..ids.len() {
                last.push(i32::try_from(r)?);
            }
        }
        let n = ids.len();
        if n == 0 {
            return Ok(vec![]);
        }
        let decode = steps.iter().all(|st| st.ids.len() == 1 && st.embeds.is_empty());
        let logits = if decode && n <= MAX_GRAPH_ROWS && !rt.graphs_off {
            match self.replay(&mut rt, n, (&ids, &meta, &ptrs, &last)) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("CUDA graph step failed (capture or replay); this decoder runs eagerly from now on: {e:#}");
                    rt.graphs_off = true;
                    rt.graphs.clear();
                    self.eager(&mut rt, steps, (&ids, &meta, &ptrs, &last))?
                }
            }
        } else {
            self.eager(&mut rt, steps, (&ids, &meta, &ptrs, &last))?
        };
        for st in steps.iter_mut() {
            st.cache.len += st.ids.len();
        }
        let vocab = self.cfg.vocab_size;
        let mut at = 0;
        Ok(steps
            .iter()
            .map(|st| {
                let n = if st.all_rows { st.ids.len() } else { 1 } * vocab;
                at += n;
                logits[at - n..at].to_vec()
            })
            .collect())
    }

    /// Copies a step's inputs into `sc`.
    fn upload_inputs(&self, sc: &mut Scratch, (ids, meta, ptrs, last): Inputs<'_>) -> Result<()> {
        let s = self.gpu.stream();
        s.memcpy_htod(ids, &mut sc.ids.slice_mut(..ids.len()))?;
        s.memcpy_htod(meta, &mut sc.meta.slice_mut(..meta.len()))?;
        s.memcpy_htod(ptrs, &mut sc.ptrs.slice_mut(..ptrs.len()))?;
        s.memcpy_htod(last, &mut sc.last.slice_mut(..last.len()))?;
        Ok(())
    }

    /// The step without a graph: buffers reused (grown when too small), media
    /// rows copied in after the embedding lookup.
    fn eager(&self, rt: &mut Runtime, steps: &[GpuStep<'_>], inputs: Inputs<'_>) -> Result<Vec<f32>> {
        let (n, ns) = (inputs.0.len(), inputs.3.len());
        if !rt.eager.as_ref().is_some_and(|sc| sc.fits(n, ns)) {
            let (r, st) = rt.eager.as_ref().map_or((n, ns), |sc| (sc.rows.max(n), sc.steps.max(ns)));
            rt.eager = None; // free the old buffers first
            rt.eager = Some(Scratch::new(&self.gpu, &self.cfg, self.shape, r, st)?);
        }
        let sc = rt.eager.as_mut().context("scratch")?;
        self.upload_inputs(sc, inputs)?;
        self.embed_rows(sc, n)?;
        self.place_embeds(steps, &mut sc.x)?;
        self.layers_and_head(sc, n, ns)?;
        Ok(self.gpu.stream().clone_dtoh(&sc.logits.slice(..ns * self.cfg.vocab_size))?)
    }

    /// A decode step of `n` sessions from its graph, captured on first use.
    fn replay(&self, rt: &mut Runtime, n: usize, inputs: Inputs<'_>) -> Result<Vec<f32>> {
        let g = match rt.graphs.entry(n) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut scratch = Scratch::new(&self.gpu, &self.cfg, self.shape, n, n)?;
                let graph = self.capture(&mut scratch, n)?;
                e.insert(DecodeGraph { scratch, graph })
            }
        };
        self.upload_inputs(&mut g.scratch, inputs)?;
        g.graph.launch()?;
        Ok(self.gpu.stream().clone_dtoh(&g.scratch.logits.slice(..n * self.cfg.vocab_size))?)
    }

    /// Records the kernels of a decode step of `n` sessions over `sc`.
    fn capture(&self, sc: &mut Scratch, n: usize) -> Result<Graph> {
        self.gpu.begin_capture()?;
        let launched = self.embed_rows(sc, n).and_then(|()| self.layers_and_head(sc, n, n));
        let ended = self.gpu.end_capture();
        launched?;
        let graph = ended?;
        tracing::debug!(sessions = n, "captured a CUDA graph for decode steps");
        Ok(graph)
    }

    /// The embedding lookup of `n` rows into `sc.x`.
    fn embed_rows(&self, sc: &mut Scratch, n: usize) -> Result<()> {
        let h = self.cfg.hidden_size;
        match &self.embed {
            GpuMatrix::Half { bits, data, .. } => self.gpu.embedding(*bits, data, &sc.ids, &mut sc.x.as_view_mut(), h, n)?,
            GpuMatrix::Blocks { qtype, data, .. } => self.gpu.embedding_q(*qtype, data, &sc.ids, &mut sc.x.as_view_mut(), h, n)?,
        }
        Ok(())
    }

    /// Every layer over `n` rows in `sc.x`, then the final norm of the `ns`
    /// sessions' last rows and the LM head into `sc.logits`. Kernel launches
    /// only (no allocation, no copy), so it can be captured.
    fn layers_and_head(&self, sc: &mut Scratch, n: usize, ns: usize) -> Result<()> {
        let c = &self.cfg;
        let (h, ff, shape, g) = (c.hidden_size, c.intermediate_size, self.shape, &self.gpu);
        let eps = c.rms_norm_eps as f32;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        // GGUF (the f16 cache): norms, block GEMVs and attention in the CPU
        // build's exact order, for its bits.
        let round = self.kv == KvType::F16;
        let splits = if self.unsplit.load(Ordering::Relaxed) { 1 } else { g.attention_splits_for(n, shape, round) };
        for (l, b) in self.blocks.iter().enumerate() {
            g.rms_norm(&sc.x.as_view(), &b.attn_norm, &mut sc.hb.as_view_mut(), None, n, h, eps, round)?;
            self.matvec(&b.wqkv, &sc.hb.as_view(), n, &mut sc.qkv.as_view_mut(), false, &mut sc.q8)?;
            g.rope_kv_append(self.kv, &mut sc.qkv.as_view_mut(), &self.cos, &self.sin, &sc.meta, &sc.ptrs, n, l, shape, c.rope_style)?;
            g.attention(self.kv, round, &sc.qkv.as_view(), &mut sc.att.as_view_mut(), &mut sc.split, &sc.meta, &sc.ptrs, n, l, shape, scale, splits)?;
            self.matvec(&b.wo, &sc.att.as_view(), n, &mut sc.x.as_view_mut(), true, &mut sc.q8)?;
            g.rms_norm(&sc.x.as_view(), &b.ffn_norm, &mut sc.hb.as_view_mut(), None, n, h, eps, round)?;
            self.matvec(&b.w_gate_up, &sc.hb.as_view(), n, &mut sc.gu.as_view_mut(), false, &mut sc.q8)?;
            g.swiglu(&sc.gu.as_view(), &mut sc.act.as_view_mut(), ff, n)?;
            self.matvec(&b.w_down, &sc.act.as_view(), n, &mut sc.x.as_view_mut(), true, &mut sc.q8)?;
        }
        g.rms_norm(&sc.x.as_view(), &self.final_norm, &mut sc.lastx.as_view_mut(), Some(&sc.last), ns, h, eps, round)?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        self.matvec(head, &sc.lastx.as_view(), ns, &mut sc.logits.as_view_mut(), false, &mut sc.q8)
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

/// A step's host-side inputs: ids, (position, capacity) pairs, cache
/// pointers, last rows.
type Inputs<'a> = (&'a [i32], &'a [i32], &'a [u64], &'a [i32]);
