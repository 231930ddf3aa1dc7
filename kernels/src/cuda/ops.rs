//! Launch wrappers for the kernels in `source.cu`: argument checks (so that a
//! wrong length is an error, not an out-of-bounds access on the device), grid
//! shapes, and the batch chunking of the GEMV.
#![allow(unsafe_code)]

use super::{Gpu, GpuError, Result};
use crate::RopeStyle;
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

/// The attention heads of a layer, as the kernels see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttnShape {
    /// Floats in one row of the fused q|k|v projection.
    pub fn qkv_width(self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }
    /// Floats in one row of the attention output.
    pub fn q_width(self) -> usize {
        self.heads * self.head_dim
    }
    /// bf16 values per position of one layer's K (or V) cache plane.
    pub fn kv_width(self) -> usize {
        self.kv_heads * self.head_dim
    }
    /// Checks that the kernels can take this shape.
    pub fn check(self) -> Result<()> {
        let rep = self.heads / self.kv_heads.max(1);
        if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) || rep > 8 {
            return Err(GpuError::Shape(format!("{} heads over {} kv heads (at most 8 per kv head)", self.heads, self.kv_heads)));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) || self.head_dim > 256 {
            return Err(GpuError::Shape(format!("head_dim {} (even, at most 256)", self.head_dim)));
        }
        Ok(())
    }
}

/// The 16-bit type of a dense weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightBits {
    Bf16,
    F16,
}

/// The element type of a KV cache: bf16, or f16 as llama.cpp keeps it (with
/// the queries and softmax weights rounded to f16 too, `attn_f16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    Bf16,
    F16,
}

impl KvType {
    pub(super) fn suffix(self) -> &'static str {
        match self {
            KvType::Bf16 => "bf16",
            KvType::F16 => "f16",
        }
    }
}

pub(super) fn int(x: usize, what: &str) -> Result<i32> {
    i32::try_from(x).map_err(|_| GpuError::Shape(format!("{what} = {x} does not fit in i32")))
}

pub(super) fn need(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(GpuError::Shape(what()))
    }
}

pub(super) fn cfg(grid: usize, block: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (grid as u32, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 }
}

/// Grid for elementwise kernels with grid-stride loops.
pub(super) fn elementwise(n: usize) -> LaunchConfig {
    cfg(n.div_ceil(256).clamp(1, 4096), 256)
}

impl Gpu {
    /// RMSNorm of `n_rows` rows of `n`: `y[r] = norm(x[src]) * w`, where `src`
    /// is `rows[r]` when `rows` is given (a gather), else `r`. `in_order` sums
    /// the squares in order on one thread, as candle's CPU kernel does (the
    /// same bits as the CPU build; slower).
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm(
        &self,
        x: &CudaView<'_, f32>,
        w: &CudaSlice<f32>,
        y: &mut CudaViewMut<'_, f32>,
        rows: Option<&CudaSlice<i32>>,
        n_rows: usize,
        n: usize,
        eps: f32,
        in_order: bool,
    ) -> Result<()> {
        need(w.len() >= n && y.len() >= n_rows * n, || format!("rms_norm: {n_rows} rows of {n}"))?;
        need(rows.map_or(x.len() >= n_rows * n, |r| r.len() >= n_rows), || "rms_norm: short input".into())?;
        if n_rows == 0 {
            return Ok(());
        }
        let (n, f) = (int(n, "n")?, self.func("rms_norm")?);
        let null = 0u64;
        let mut b = self.stream.launch_builder(f);
        b.arg(x).arg(w).arg(y);
        match rows {
            Some(r) => b.arg(r),
            None => b.arg(&null),
        };
        let seq = i32::from(in_order);
        b.arg(&n).arg(&eps).arg(&seq);
        // SAFETY: the argument list matches `rms_norm` in source.cu; lengths
        // were checked above (rows' entries are the caller's row indices < x rows).
        unsafe { b.launch(cfg(n_rows, 256)) }?;
        Ok(())
    }

    /// `y[b] (+)= W · x[b]` for `batch` rows; `w` is `[rows, cols]` 16-bit
    /// values of type `bits`, `x` `[batch, cols]`, `y` `[batch, rows]`. Adds
    /// into `y` when `accumulate`. Each weight pass serves up to 32 activation rows.
    #[allow(clippy::too_many_arguments)]
    pub fn gemv(
        &self,
        bits: WeightBits,
        w: &CudaView<'_, u16>,
        rows: usize,
        cols: usize,
        x: &CudaView<'_, f32>,
        batch: usize,
        y: &mut CudaViewMut<'_, f32>,
        accumulate: bool,
    ) -> Result<()> {
        need(cols.is_multiple_of(8) && cols > 0, || format!("gemv: cols {cols} is not a multiple of 8"))?;
        need(w.len() >= rows * cols && x.len() >= batch * cols && y.len() >= batch * rows, || {
            format!("gemv: {rows}x{cols} weights, {batch} rows: buffers too short")
        })?;
        let (r, c, acc) = (int(rows, "rows")?, int(cols, "cols")?, i32::from(accumulate));
        let mut done = 0;
        while done < batch {
            let nb = [32, 16, 8, 4, 2, 1].into_iter().find(|&nb| nb <= batch - done).unwrap_or(1);
            let kind = if bits == WeightBits::Bf16 { "bf16" } else { "f16" };
            let f = self.func(&format!("gemv_{kind}_{nb}"))?;
            let xs = x.slice(done * cols..);
            let mut ys = y.slice_mut(done * rows..);
            let mut b = self.stream.launch_builder(f);
            b.arg(w).arg(&xs).arg(&mut ys).arg(&r).arg(&c).arg(&acc);
            // SAFETY: matches `gemv_bf16_NB`; w holds rows·cols values, xs at
            // least nb·cols, ys at least nb·rows (checked above); cols % 8 == 0
            // and device allocations are 256-byte aligned, so the 16-byte loads
            // are aligned.
            unsafe { b.launch(cfg(rows.div_ceil(8), 256)) }?;
            done += nb;
        }
        Ok(())
    }

    /// Rotates q and k of `n_rows` rows of fused `qkv` and appends k and v to
    /// the caches. `meta` holds (position, capacity) per row and `caches` each
    /// row's session cache base pointer (`[layer][K, V][cap][kv_width]` of `kv`).
    #[allow(clippy::too_many_arguments)]
    pub fn rope_kv_append(
        &self,
        kv: KvType,
        qkv: &mut CudaViewMut<'_, f32>,
        cos: &CudaSlice<f32>,
        sin: &CudaSlice<f32>,
        meta: &CudaSlice<i32>,
        caches: &CudaSlice<u64>,
        n_rows: usize,
        layer: usize,
        shape: AttnShape,
        style: RopeStyle,
    ) -> Result<()> {
        shape.check()?;
        need(qkv.len() >= n_rows * shape.qkv_width() && meta.len() >= 2 * n_rows && caches.len() >= n_rows, || {
            "rope_kv_append: short buffers".into()
        })?;
        if n_rows == 0 {
            return Ok(());
        }
        let (layer, qh, kvh, hd) = (int(layer, "layer")?, int(shape.heads, "heads")?, int(shape.kv_heads, "kv")?, int(shape.head_dim, "hd")?);
        let inter = i32::from(style == RopeStyle::Interleaved);
        let mut b = self.stream.launch_builder(self.func(&format!("rope_kv_append_{}", kv.suffix()))?);
        b.arg(qkv).arg(cos).arg(sin).arg(meta).arg(caches).arg(&layer).arg(&qh).arg(&kvh).arg(&hd).arg(&inter);
        // SAFETY: matches `rope_kv_append_{bf16,f16}`; the caller guarantees that every
        // row's position is below its capacity and below the rotary tables'
        // length, and that each cache pointer is a live allocation of
        // layers·2·cap·kv_width 16-bit values (GpuKvCache upholds this).
        unsafe { b.launch(cfg(n_rows, 128)) }?;
        Ok(())
    }

    /// `out[r] = silu(gate) * up` for rows of `gu` = `[gate (ff) | up (ff)]`.
    pub fn swiglu(&self, gu: &CudaView<'_, f32>, out: &mut CudaViewMut<'_, f32>, ff: usize, rows: usize) -> Result<()> {
        need(gu.len() >= 2 * ff * rows && out.len() >= ff * rows, || "swiglu: short buffers".into())?;
        let (ffi, ri) = (int(ff, "ff")?, int(rows, "rows")?);
        let mut b = self.stream.launch_builder(self.func("swiglu")?);
        b.arg(gu).arg(out).arg(&ffi).arg(&ri);
        // SAFETY: matches `swiglu`; lengths checked.
        unsafe { b.launch(elementwise(ff * rows)) }?;
        Ok(())
    }

    /// `x += y` over the first `n` elements.
    pub fn add(&self, x: &mut CudaViewMut<'_, f32>, y: &CudaView<'_, f32>, n: usize) -> Result<()> {
        need(x.len() >= n && y.len() >= n, || "add: short buffers".into())?;
        let ni = int(n, "n")?;
        let mut b = self.stream.launch_builder(self.func("add_f32")?);
        b.arg(x).arg(y).arg(&ni);
        // SAFETY: matches `add_f32`; lengths checked.
        unsafe { b.launch(elementwise(n)) }?;
        Ok(())
    }

    /// `out[r] = table[ids[r]]` widened to f32 (`table` `[vocab, hidden]` of
    /// 16-bit `bits`); ids outside the table give zero rows.
    pub fn embedding(&self, bits: WeightBits, table: &CudaSlice<u16>, ids: &CudaSlice<i32>, out: &mut CudaViewMut<'_, f32>, hidden: usize, rows: usize) -> Result<()> {
        need(hidden > 0 && table.len().is_multiple_of(hidden), || "embedding: table is not [vocab, hidden]".into())?;
        need(ids.len() >= rows && out.len() >= rows * hidden, || "embedding: short buffers".into())?;
        if rows == 0 {
            return Ok(());
        }
        let (h, v, f16) = (int(hidden, "hidden")?, int(table.len() / hidden, "vocab")?, i32::from(bits == WeightBits::F16));
        let mut b = self.stream.launch_builder(self.func("embedding")?);
        b.arg(table).arg(ids).arg(out).arg(&h).arg(&v).arg(&f16);
        // SAFETY: matches `embedding`; ids are bounds-checked in the kernel.
        unsafe { b.launch(cfg(rows, 256)) }?;
        Ok(())
    }
}
