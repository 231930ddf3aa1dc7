//! Launch wrapper of decode attention, flash-decoding style: each row's
//! positions are split over several blocks when the rows and kv heads alone
//! would leave most multiprocessors idle (one decode row of a model with 8 kv
//! heads fills 8 of an H100's 132). The last block of each (row, kv head) to
//! finish merges the splits' partial softmaxes, so splitting costs no second
//! launch, and a cache shorter than two chunks runs as if unsplit. The
//! f16-rounding kernel of the GGUF path keeps one block per (row, kv head),
//! since it follows the CPU build's summation order.
#![allow(unsafe_code)]

use super::ops::{int, need, AttnShape, KvType};
use super::{Gpu, GpuError, Result};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

/// The most splits of one row's positions.
pub const MAX_SPLITS: usize = 32;

/// How many splits an attention launch over `rows` rows uses on a device of
/// `sms` multiprocessors: about two blocks per multiprocessor, at most
/// [`MAX_SPLITS`]; one when the (row, kv head) blocks fill the device already.
/// Each split takes at least 64 positions (`SPLIT_MIN` in `source.cu`), so a
/// short cache leaves later splits empty.
pub fn attention_splits(rows: usize, kv_heads: usize, sms: usize) -> usize {
    let blocks = rows * kv_heads;
    if blocks == 0 || blocks >= sms {
        1
    } else {
        (2 * sms).div_ceil(blocks).min(MAX_SPLITS)
    }
}

/// What split attention keeps between its blocks: each split's partial
/// softmax (max, sum, output) and, per (row, kv head), how many splits are
/// done (0 between launches).
pub struct SplitScratch {
    part: CudaSlice<f32>,
    done: CudaSlice<u32>,
}

impl SplitScratch {
    /// Room for `rows` rows split `splits` ways.
    pub fn new(gpu: &Gpu, shape: AttnShape, rows: usize, splits: usize) -> Result<Self> {
        let s = gpu.stream();
        Ok(Self { part: s.alloc_zeros(partials(shape, rows, splits).max(1))?, done: s.alloc_zeros((rows * shape.kv_heads).max(1))? })
    }

    /// Room for what [`Gpu::attention`] needs for up to `max_rows` rows (it
    /// splits only below one block per multiprocessor).
    pub fn for_rows(gpu: &Gpu, shape: AttnShape, max_rows: usize) -> Result<Self> {
        let sms = gpu.multiprocessors();
        let rows = max_rows.min(sms);
        let part = (1..=rows).map(|n| partials(shape, n, attention_splits(n, shape.kv_heads, sms))).max().unwrap_or(0);
        let s = gpu.stream();
        Ok(Self { part: s.alloc_zeros(part.max(1))?, done: s.alloc_zeros((rows * shape.kv_heads).max(1))? })
    }
}

/// Floats of partials a launch of `splits` splits over `rows` rows writes.
fn partials(shape: AttnShape, rows: usize, splits: usize) -> usize {
    if splits <= 1 {
        0
    } else {
        rows * shape.heads * splits * (shape.head_dim + 2)
    }
}

impl Gpu {
    /// The split count [`Gpu::attention`] should use for `n_rows` rows on
    /// this device: [`attention_splits`], or 1 with `round_f16` (the f16 path
    /// follows the CPU build's order and never splits).
    pub fn attention_splits_for(&self, n_rows: usize, shape: AttnShape, round_f16: bool) -> usize {
        if round_f16 {
            1
        } else {
            attention_splits(n_rows, shape.kv_heads, self.multiprocessors())
        }
    }

    /// Decode attention of `n_rows` rows (queries in `qkv`, rotated) over their
    /// sessions' caches, positions `0..=pos` each; writes `[n_rows, q_width]`.
    /// `round_f16` rounds the queries and the softmax weights to f16
    /// (llama.cpp). Each row's positions are split `splits` ways (1 to
    /// [`MAX_SPLITS`], 1 with `round_f16`; usually
    /// [`Gpu::attention_splits_for`]), with `split` holding room for them
    /// ([`SplitScratch::for_rows`]).
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        kv: KvType,
        round_f16: bool,
        qkv: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
        split: &mut SplitScratch,
        meta: &CudaSlice<i32>,
        caches: &CudaSlice<u64>,
        n_rows: usize,
        layer: usize,
        shape: AttnShape,
        scale: f32,
        splits: usize,
    ) -> Result<()> {
        shape.check()?;
        need(qkv.len() >= n_rows * shape.qkv_width() && out.len() >= n_rows * shape.q_width(), || "attention: short buffers".into())?;
        need(meta.len() >= 2 * n_rows && caches.len() >= n_rows, || "attention: short row tables".into())?;
        if !(1..=MAX_SPLITS).contains(&splits) || (round_f16 && splits > 1) {
            return Err(GpuError::Shape(format!("attention: {splits} splits (1 to {MAX_SPLITS}; 1 with f16 rounding)")));
        }
        let want = partials(shape, n_rows, splits);
        need(splits == 1 || (split.part.len() >= want && split.done.len() >= n_rows * shape.kv_heads), || {
            format!("attention: split scratch of {} partials and {} counts; {splits} splits of {n_rows} rows need {want} and {}", split.part.len(), split.done.len(), n_rows * shape.kv_heads)
        })?;
        if n_rows == 0 {
            return Ok(());
        }
        let (d, threads) = if shape.head_dim <= 128 { ("d4", 256) } else { ("d8", 128) };
        let name = format!("attention_{}_{d}", kv.suffix());
        let round = i32::from(round_f16);
        let (layer, qh, kvh, hd) = (int(layer, "layer")?, int(shape.heads, "heads")?, int(shape.kv_heads, "kv")?, int(shape.head_dim, "hd")?);
        let mut b = self.stream().launch_builder(self.func(&name)?);
        b.arg(qkv).arg(&mut *out).arg(&mut split.part).arg(&mut split.done).arg(meta).arg(caches);
        b.arg(&layer).arg(&qh).arg(&kvh).arg(&hd).arg(&scale).arg(&round);
        let grid = LaunchConfig { grid_dim: (n_rows as u32, shape.kv_heads as u32, splits as u32), block_dim: (threads, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: matches `attention_{bf16,f16}_d4/d8` (head_dim ≤ 128 / ≤ 256, ≤ 8 query
        // heads per kv head: checked); cache pointers as in rope_kv_append,
        // positions 0..=pos written before; with more than one split, `part`
        // holds every split's partials and `done` a zeroed count per (row, kv
        // head) (checked; the kernel leaves them at 0), neither touched with one.
        unsafe { b.launch(grid) }?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fill_the_device_only_when_rows_do_not() {
        // reka-edge (8 kv heads) on an H100 (132 SMs): one decode row splits 32 ways...
        assert_eq!(attention_splits(1, 8, 132), 32);
        // ...four rows 9 ways; 17 rows (136 blocks) fill it alone.
        assert_eq!(attention_splits(4, 8, 132), 9);
        assert_eq!(attention_splits(17, 8, 132), 1);
        assert_eq!(attention_splits(0, 8, 132), 1);
        // SmolLM2 (3 kv heads): 132 blocks at 44 rows.
        assert_eq!(attention_splits(43, 3, 132), 3);
        assert_eq!(attention_splits(44, 3, 132), 1);
    }
}
