//! Device buffers of one forward pass, allocated once and reused: the step's
//! inputs (ids, positions, cache pointers, last rows), the activations, the
//! 8-bit activation quants, and the logits. Reuse takes allocation out of the
//! step, and fixed addresses are what lets a CUDA graph replay a decode step.

use crate::model::config::DecoderConfig;
use anyhow::Result;
use cudarc::driver::CudaSlice;
use reka_kernels::cuda::{AttnShape, Gpu, Q8Acts, SplitScratch};

/// Buffers for up to `rows` token rows from up to `steps` sessions.
pub struct Scratch {
    pub rows: usize,
    pub steps: usize,
    pub ids: CudaSlice<i32>,
    /// `(position, capacity)` per row.
    pub meta: CudaSlice<i32>,
    /// Each row's session cache base pointer.
    pub ptrs: CudaSlice<u64>,
    /// Each session's last row.
    pub last: CudaSlice<i32>,
    pub x: CudaSlice<f32>,
    pub hb: CudaSlice<f32>,
    pub qkv: CudaSlice<f32>,
    pub att: CudaSlice<f32>,
    /// The attention splits' partial softmaxes (flash-decoding).
    pub split: SplitScratch,
    pub gu: CudaSlice<f32>,
    pub act: CudaSlice<f32>,
    pub q8: Q8Acts,
    pub lastx: CudaSlice<f32>,
    pub logits: CudaSlice<f32>,
}

impl Scratch {
    /// Allocates for `rows` rows and `steps` sessions of a decoder shaped `c`.
    pub fn new(gpu: &Gpu, c: &DecoderConfig, shape: AttnShape, rows: usize, steps: usize) -> Result<Self> {
        let (h, ff, s) = (c.hidden_size, c.intermediate_size, gpu.stream());
        let (rows, steps) = (rows.max(1), steps.max(1));
        Ok(Self {
            rows,
            steps,
            ids: s.alloc_zeros(rows)?,
            meta: s.alloc_zeros(2 * rows)?,
            ptrs: s.alloc_zeros(rows)?,
            last: s.alloc_zeros(steps)?,
            x: s.alloc_zeros(rows * h)?,
            hb: s.alloc_zeros(rows * h)?,
            qkv: s.alloc_zeros(rows * shape.qkv_width())?,
            att: s.alloc_zeros(rows * shape.q_width())?,
            split: SplitScratch::for_rows(gpu, shape, rows)?,
            gu: s.alloc_zeros(rows * 2 * ff)?,
            act: s.alloc_zeros(rows * ff)?,
            q8: Q8Acts::new(s, rows * h.max(ff).max(shape.q_width()))?,
            lastx: s.alloc_zeros(steps * h)?,
            logits: s.alloc_zeros(steps * c.vocab_size)?,
        })
    }

    /// Whether it holds `rows` rows of `steps` sessions.
    pub fn fits(&self, rows: usize, steps: usize) -> bool {
        rows <= self.rows && steps <= self.steps
    }
}
