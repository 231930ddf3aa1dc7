//! Weight matrices for the GPU decoder, read on the host from either kind of
//! file the CPU build serves and uploaded once:
//!
//! - Hugging Face safetensors directories: bf16 (f16/f32 narrowed to bf16);
//! - GGUF files: Q4_0, Q4_1 and Q8_0 stay in their blocks (the GPU computes
//!   with them as the CPU build does), bf16 and f16 stay 16-bit, anything else
//!   (K-quants, f32) is dequantized and narrowed to bf16.
//!
//! Matrices that read the same input (q|k|v, gate|up) are fused row-wise into
//! one before the upload, so a layer is four GEMVs.

use anyhow::{bail, Context, Result};
use candle_core::quantized::{GgmlDType, QTensor};
use cudarc::driver::{CudaSlice, CudaStream};
use half::{bf16, f16};
use reka_kernels::cuda::WeightBits;
use reka_kernels::quant::{QMatrix, QType};
use std::sync::Arc;

/// A `[rows, cols]` weight matrix in host memory, as it will sit on the GPU.
pub enum HostMatrix {
    Half { bits: WeightBits, rows: usize, cols: usize, data: Vec<u16> },
    Blocks { qtype: QType, rows: usize, cols: usize, data: Vec<u8> },
}

/// A weight matrix on the GPU.
pub enum GpuMatrix {
    Half { bits: WeightBits, rows: usize, cols: usize, data: CudaSlice<u16> },
    Blocks { qtype: QType, rows: usize, cols: usize, data: CudaSlice<u8> },
}

impl GpuMatrix {
    /// Device bytes of the weights.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Half { data, .. } => data.len() * 2,
            Self::Blocks { data, .. } => data.len(),
        }
    }
}

impl HostMatrix {
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Half { rows, cols, .. } | Self::Blocks { rows, cols, .. } => (*rows, *cols),
        }
    }

    /// A GGUF tensor `[out, in]`.
    pub fn from_gguf(q: &QTensor) -> Result<Self> {
        let (rows, cols) = q.shape().dims2()?;
        let blocks = |qtype| -> Result<Self> { Ok(Self::Blocks { qtype, rows, cols, data: q.data()?.into_owned() }) };
        let halves = |bits| -> Result<Self> {
            let data = q.data()?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            Ok(Self::Half { bits, rows, cols, data })
        };
        match q.dtype() {
            GgmlDType::Q4_0 => blocks(QType::Q4_0),
            GgmlDType::Q4_1 => blocks(QType::Q4_1),
            GgmlDType::Q8_0 => blocks(QType::Q8_0),
            GgmlDType::BF16 => halves(WeightBits::Bf16),
            GgmlDType::F16 => halves(WeightBits::F16),
            other => {
                tracing::debug!(dtype = ?other, "GGUF tensor dequantized to bf16 for the GPU");
                let v: Vec<f32> = q.dequantize(&candle_core::Device::Cpu)?.flatten_all()?.to_vec1()?;
                Ok(Self::Half { bits: WeightBits::Bf16, rows, cols, data: v.iter().map(|&x| bf16::from_f32(x).to_bits()).collect() })
            }
        }
    }

    /// Row `r` widened to f32.
    fn row_f32(&self, r: usize) -> Result<Vec<f32>> {
        Ok(match self {
            Self::Half { bits, cols, data, .. } => {
                let row = &data[r * cols..(r + 1) * cols];
                match bits {
                    WeightBits::Bf16 => row.iter().map(|&b| bf16::from_bits(b).to_f32()).collect(),
                    WeightBits::F16 => row.iter().map(|&b| f16::from_bits(b).to_f32()).collect(),
                }
            }
            Self::Blocks { qtype, rows, cols, data } => {
                let bytes_per_row = cols / reka_kernels::quant::BLOCK * qtype.block_bytes();
                let one = QMatrix::new(*qtype, 1, *cols, data[r * bytes_per_row..(r + 1) * bytes_per_row].to_vec())
                    .map_err(|e| anyhow::anyhow!("{e} (row {r} of {rows})"))?;
                let mut out = vec![0f32; *cols];
                one.dequantize_row(0, &mut out);
                out
            }
        })
    }

    /// The matrix as bf16, whatever it was.
    fn into_bf16(self) -> Result<Self> {
        if let Self::Half { bits: WeightBits::Bf16, .. } = self {
            return Ok(self);
        }
        let (rows, cols) = self.shape();
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            data.extend(self.row_f32(r)?.iter().map(|&x| bf16::from_f32(x).to_bits()));
        }
        Ok(Self::Half { bits: WeightBits::Bf16, rows, cols, data })
    }

    /// Stacks matrices of one width row-wise (q|k|v, gate|up). Parts of one
    /// type stay in it; mixed types are all narrowed to bf16.
    pub fn fuse(parts: Vec<HostMatrix>) -> Result<Self> {
        let Some(first) = parts.first() else { bail!("nothing to fuse") };
        let cols = first.shape().1;
        if parts.iter().any(|p| p.shape().1 != cols) {
            bail!("fused matrices differ in width");
        }
        let rows = parts.iter().map(|p| p.shape().0).sum();
        let kind = |p: &HostMatrix| match p {
            Self::Half { bits, .. } => (0, *bits as u8),
            Self::Blocks { qtype, .. } => (1, *qtype as u8),
        };
        let same = parts.iter().all(|p| kind(p) == kind(first));
        let parts = if same { parts } else { parts.into_iter().map(Self::into_bf16).collect::<Result<Vec<_>>>()? };
        match &parts[0] {
            Self::Half { bits, .. } => {
                let bits = *bits;
                let mut data = Vec::new();
                for p in parts {
                    let Self::Half { data: d, .. } = p else { bail!("mixed parts") };
                    data.extend(d);
                }
                Ok(Self::Half { bits, rows, cols, data })
            }
            Self::Blocks { qtype, .. } => {
                let qtype = *qtype;
                let mut data = Vec::new();
                for p in parts {
                    let Self::Blocks { data: d, .. } = p else { bail!("mixed parts") };
                    data.extend(d);
                }
                Ok(Self::Blocks { qtype, rows, cols, data })
            }
        }
    }

    /// Copies the matrix to the device. The GEMV kernels need the width to be
    /// a multiple of 8 (16-bit) or 32 (blocks).
    pub fn upload(self, s: &Arc<CudaStream>) -> Result<GpuMatrix> {
        Ok(match self {
            Self::Half { bits, rows, cols, data } => {
                if !cols.is_multiple_of(8) {
                    bail!("a {rows}x{cols} matrix: the GPU GEMV needs widths that are multiples of 8");
                }
                GpuMatrix::Half { bits, rows, cols, data: s.clone_htod(&data).context("uploading weights")? }
            }
            Self::Blocks { qtype, rows, cols, data } => GpuMatrix::Blocks { qtype, rows, cols, data: s.clone_htod(&data).context("uploading weights")? },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q8_rows(rows: usize, cols: usize, seed: u8) -> HostMatrix {
        let mut data = Vec::new();
        for b in 0..rows * cols / 32 {
            data.extend(f16::from_f32(0.5).to_le_bytes());
            data.extend((0..32).map(|j| (b as u8).wrapping_mul(7).wrapping_add(j).wrapping_add(seed)));
        }
        HostMatrix::Blocks { qtype: QType::Q8_0, rows, cols, data }
    }

    #[test]
    fn fusing_one_block_type_keeps_the_blocks_and_mixed_types_become_bf16() {
        let (a, b) = (q8_rows(3, 64, 1), q8_rows(2, 64, 9));
        let (ra, rb) = (a.row_f32(2).expect("row"), b.row_f32(0).expect("row"));
        let fused = HostMatrix::fuse(vec![a, b]).expect("fuse");
        assert!(matches!(fused, HostMatrix::Blocks { qtype: QType::Q8_0, rows: 5, cols: 64, .. }));
        assert_eq!(fused.row_f32(2).expect("row"), ra);
        assert_eq!(fused.row_f32(3).expect("row"), rb);

        let half = HostMatrix::Half { bits: WeightBits::F16, rows: 1, cols: 64, data: vec![f16::from_f32(1.5).to_bits(); 64] };
        let mixed = HostMatrix::fuse(vec![q8_rows(2, 64, 3), half]).expect("fuse");
        let HostMatrix::Half { bits: WeightBits::Bf16, rows: 3, .. } = &mixed else { panic!("mixed parts should become bf16") };
        assert_eq!(mixed.row_f32(2).expect("row"), vec![1.5; 64]);
        assert!(HostMatrix::fuse(vec![q8_rows(1, 64, 0), q8_rows(1, 32, 0)]).is_err(), "widths differ");
    }
}
