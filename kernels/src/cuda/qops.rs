//! Launch wrappers for the GGUF block kernels: activation quantization
//! (`quantize_q8`), GEMV over Q4_0 / Q4_1 / Q8_0 weights, and the embedding
//! lookup from a block table. Lengths are checked here, so a wrong size is an
//! error rather than an out-of-bounds access on the device.
#![allow(unsafe_code)]

use super::ops::{cfg, int, need};
use super::{Gpu, Result};
use crate::quant::{QType, BLOCK};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, PushKernelArg};
use std::sync::Arc;

/// Activation rows quantized to 8 bits per 32-value block, on the device: `qs`
/// (one i8 per value), the block scales `d` and Q8_1's `s = d·Σq` (f32 holding
/// f16-rounded values, as the CPU's `quant::Q8Row`).
pub struct Q8Acts {
    qs: CudaSlice<i8>,
    d: CudaSlice<f32>,
    s: CudaSlice<f32>,
    /// Values quantized by the last [`Gpu::quantize_q8`].
    len: usize,
}

impl Q8Acts {
    /// Room for `values` activations (a multiple of 32).
    pub fn new(stream: &Arc<CudaStream>, values: usize) -> Result<Self> {
        let blocks = values.div_ceil(BLOCK).max(1);
        Ok(Self {
            qs: stream.alloc_zeros(blocks * BLOCK)?,
            d: stream.alloc_zeros(blocks)?,
            s: stream.alloc_zeros(blocks)?,
            len: 0,
        })
    }

    /// Values it can hold.
    pub fn capacity(&self) -> usize {
        self.qs.len()
    }

    /// The quants, scales and sums as host vectors (tests).
    pub fn to_host(&self, stream: &Arc<CudaStream>) -> Result<(Vec<i8>, Vec<f32>, Vec<f32>)> {
        let nb = self.len / BLOCK;
        Ok((
            stream.clone_dtoh(&self.qs.slice(..self.len))?,
            stream.clone_dtoh(&self.d.slice(..nb))?,
            stream.clone_dtoh(&self.s.slice(..nb))?,
        ))
    }
}

fn qt_index(q: QType) -> i32 {
    match q {
        QType::Q4_0 => 0,
        QType::Q4_1 => 1,
        QType::Q8_0 => 2,
        QType::Q5_0 | QType::Q5_1 => unreachable!("the GPU weights widen 5-bit blocks to bf16 (gpu/weights.rs)"),
    }
}

fn qt_name(q: QType) -> &'static str {
    match q {
        QType::Q4_0 => "q4_0",
        QType::Q4_1 => "q4_1",
        QType::Q8_0 => "q8_0",
        QType::Q5_0 | QType::Q5_1 => unreachable!("the GPU weights widen 5-bit blocks to bf16 (gpu/weights.rs)"),
    }
}

impl Gpu {
    /// Quantizes `rows` rows of `cols` values (a multiple of 32) into `out`.
    pub fn quantize_q8(&self, x: &CudaView<'_, f32>, rows: usize, cols: usize, out: &mut Q8Acts) -> Result<()> {
        let n = rows * cols;
        need(cols.is_multiple_of(BLOCK), || format!("quantize_q8: {cols} columns is not a multiple of {BLOCK}"))?;
        need(x.len() >= n && out.capacity() >= n, || format!("quantize_q8: {rows}x{cols} does not fit"))?;
        out.len = n;
        if n == 0 {
            return Ok(());
        }
        let nb = int(n / BLOCK, "blocks")?;
        let mut b = self.stream.launch_builder(self.func("quantize_q8")?);
        b.arg(x).arg(&mut out.qs).arg(&mut out.d).arg(&mut out.s).arg(&nb);
        // SAFETY: matches `quantize_q8`; x holds nb·32 values and out has room
        // for them (checked above). Eight warps per block, one warp per 32 values.
        unsafe { b.launch(cfg((n / BLOCK).div_ceil(8).min(65_535), 256)) }?;
        Ok(())
    }

    /// `y[b] (+)= W · x[b]` for `batch` quantized activation rows `acts`; `w`
    /// holds `[rows, cols]` weights in `qtype` blocks. Adds into `y` when
    /// `accumulate`. Each weight pass serves up to 8 activation rows.
    #[allow(clippy::too_many_arguments)]
    pub fn gemv_q(
        &self,
        qtype: QType,
        w: &CudaView<'_, u8>,
        rows: usize,
        cols: usize,
        acts: &Q8Acts,
        batch: usize,
        y: &mut CudaViewMut<'_, f32>,
        accumulate: bool,
    ) -> Result<()> {
        need(cols.is_multiple_of(BLOCK) && cols > 0, || format!("gemv_q: cols {cols} is not a multiple of {BLOCK}"))?;
        let nb = cols / BLOCK;
        need(w.len() >= rows * nb * qtype.block_bytes(), || format!("gemv_q: {qtype:?} {rows}x{cols} weights are short"))?;
        need(acts.len >= batch * cols && y.len() >= batch * rows, || format!("gemv_q: {batch} rows of {cols}: buffers too short"))?;
        let (r, c, acc) = (int(rows, "rows")?, int(cols, "cols")?, i32::from(accumulate));
        let mut done = 0;
        while done < batch {
            let n = [8, 4, 2, 1].into_iter().find(|&n| n <= batch - done).unwrap_or(1);
            let f = self.func(&format!("gemv_{}_{n}", qt_name(qtype)))?;
            let xq = acts.qs.slice(done * cols..);
            let xd = acts.d.slice(done * nb..);
            let xs = acts.s.slice(done * nb..);
            let mut ys = y.slice_mut(done * rows..);
            let mut b = self.stream.launch_builder(f);
            b.arg(w).arg(&xq).arg(&xd).arg(&xs).arg(&mut ys).arg(&r).arg(&c).arg(&acc);
            // SAFETY: matches `gemv_<qtype>_<n>`; w holds rows·nb blocks, the
            // activations n·cols quants and n·nb scales from `done` on, ys
            // n·rows outputs (checked above). Quants start at multiples of
            // 32 bytes of a 256-byte-aligned allocation (the 16-byte loads).
            unsafe { b.launch(cfg(rows.div_ceil(32), 256)) }?;
            done += n;
        }
        Ok(())
    }

    /// `out[r]` = row `ids[r]` of a `[vocab, hidden]` table in `qtype` blocks,
    /// dequantized; ids outside the table give zero rows.
    pub fn embedding_q(
        &self,
        qtype: QType,
        table: &CudaSlice<u8>,
        ids: &CudaSlice<i32>,
        out: &mut CudaViewMut<'_, f32>,
        hidden: usize,
        rows: usize,
    ) -> Result<()> {
        need(hidden.is_multiple_of(BLOCK) && hidden > 0, || "embedding_q: hidden is not a multiple of 32".into())?;
        let row_bytes = hidden / BLOCK * qtype.block_bytes();
        need(table.len().is_multiple_of(row_bytes), || "embedding_q: table is not [vocab, hidden]".into())?;
        need(ids.len() >= rows && out.len() >= rows * hidden, || "embedding_q: short buffers".into())?;
        if rows == 0 {
            return Ok(());
        }
        let (h, v, qt) = (int(hidden, "hidden")?, int(table.len() / row_bytes, "vocab")?, qt_index(qtype));
        let mut b = self.stream.launch_builder(self.func("embedding_q")?);
        b.arg(table).arg(ids).arg(out).arg(&h).arg(&v).arg(&qt);
        // SAFETY: matches `embedding_q`; ids are bounds-checked in the kernel,
        // the table holds vocab whole rows (checked above).
        unsafe { b.launch(cfg(rows, 256)) }?;
        Ok(())
    }
}
