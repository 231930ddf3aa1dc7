//! Matmuls over 16-bit float weights (bf16 or f16) kept as stored, for
//! checkpoints served without widening them to f32: each row is widened into a
//! small scratch buffer as it is used, and accumulated in f32 against f32
//! activations. Rows are split over the rayon pool.

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};
use rayon::prelude::*;

/// The 16-bit float format of a [`HalfMatrix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfType {
    Bf16,
    F16,
}

/// A `[rows, cols]` weight matrix of 16-bit floats (their bits), row-major.
#[derive(Debug, Clone)]
pub struct HalfMatrix {
    pub kind: HalfType,
    pub rows: usize,
    pub cols: usize,
    bits: Vec<u16>,
}

impl HalfMatrix {
    /// Takes the bits of `rows × cols` values.
    pub fn new(kind: HalfType, rows: usize, cols: usize, bits: Vec<u16>) -> Result<Self, String> {
        if bits.len() != rows * cols {
            return Err(format!("{} values for a {rows}×{cols} matrix", bits.len()));
        }
        Ok(Self { kind, rows, cols, bits })
    }

    /// Row `r` widened into `out` (`cols` long).
    #[inline(always)]
    fn widen_row(&self, r: usize, out: &mut [f32]) {
        let row = &self.bits[r * self.cols..(r + 1) * self.cols];
        match self.kind {
            HalfType::Bf16 => row.reinterpret_cast::<bf16>().convert_to_f32_slice(out),
            HalfType::F16 => row.reinterpret_cast::<f16>().convert_to_f32_slice(out),
        }
    }

    /// Bytes the weights take.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 2
    }
}

/// Dot product with eight independent accumulators, so that it vectorises
/// (inlined into each level's compilation).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, at) = a.split_at(a.len() - a.len() % 8);
    let (bc, bt) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = at.iter().zip(bt).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

const ROWS_PER_TASK: usize = 32;

/// `y = x · Wᵀ` for `t` activation rows `x` `[t, cols]`; returns `[t, rows]`.
pub fn matmul(w: &HalfMatrix, x: &[f32], t: usize) -> Vec<f32> {
    matmul_with(crate::cpu::selected(), w, x, t)
}

/// [`matmul`] compiled for a given level (it must be supported by the CPU).
/// Every level runs the same code (eight accumulators, multiply then add:
/// Rust never fuses them), so all give the same bits; the wider ones widen
/// and multiply more values per instruction.
pub fn matmul_with(isa: crate::cpu::Isa, w: &HalfMatrix, x: &[f32], t: usize) -> Vec<f32> {
    assert!(x.len() >= t * w.cols, "activations shorter than t × cols");
    assert!(isa.supported(), "{isa} is not supported by this CPU");
    let mut yt = vec![0f32; w.rows * t]; // [rows, t]: disjoint slices per task
    yt.par_chunks_mut(ROWS_PER_TASK * t).enumerate().for_each(|(i, out)| {
        let mut row = vec![0f32; w.cols];
        let first = i * ROWS_PER_TASK;
        #[cfg(target_arch = "x86_64")]
        {
            use crate::cpu::Isa;
            // SAFETY: `matmul_with` checked that the CPU supports `isa`.
            #[allow(unsafe_code)]
            unsafe {
                match isa {
                    Isa::Avx512 | Isa::Avx512Vnni => return rows_avx512(w, first, x, t, &mut row, out),
                    Isa::Avx2 | Isa::AvxVnni => return rows_avx2(w, first, x, t, &mut row, out),
                    Isa::Scalar => {}
                }
            }
        }
        rows(w, first, x, t, &mut row, out)
    });
    crate::rows_to_tokens(yt, w.rows, t)
}

/// `out[k · t + j]` = row `first + k` · activation row `j`.
#[inline(always)]
fn rows(w: &HalfMatrix, first: usize, x: &[f32], t: usize, row: &mut [f32], out: &mut [f32]) {
    for (k, o) in out.chunks_exact_mut(t).enumerate() {
        w.widen_row(first + k, row);
        for (j, v) in o.iter_mut().enumerate() {
            *v = dot(row, &x[j * w.cols..(j + 1) * w.cols]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(w: &HalfMatrix, first: usize, x: &[f32], t: usize, row: &mut [f32], out: &mut [f32]) {
    rows(w, first, x, t, row, out)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn rows_avx512(w: &HalfMatrix, first: usize, x: &[f32], t: usize, row: &mut [f32], out: &mut [f32]) {
    rows(w, first, x, t, row, out)
}

/// Reference for [`matmul`]: every weight widened one at a time, summed in f64.
pub fn matmul_slow(w: &HalfMatrix, x: &[f32], t: usize) -> Vec<f32> {
    let value = |b: u16| match w.kind {
        HalfType::Bf16 => bf16::from_bits(b).to_f64(),
        HalfType::F16 => f16::from_bits(b).to_f64(),
    };
    let mut y = vec![0f32; t * w.rows];
    for j in 0..t {
        for r in 0..w.rows {
            let s: f64 = (0..w.cols)
                .map(|c| value(w.bits[r * w.cols + c]) * x[j * w.cols + c] as f64)
                .sum();
            y[j * w.rows + r] = s as f32;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn matches_the_slow_reference() {
        let mut s = 7u64;
        for kind in [HalfType::Bf16, HalfType::F16] {
            for (rows, cols, t) in [(70, 45, 1), (33, 64, 3), (1, 8, 2), (129, 100, 5)] {
                let bits: Vec<u16> = (0..rows * cols)
                    .map(|_| match kind {
                        HalfType::Bf16 => bf16::from_f32(lcg(&mut s)).to_bits(),
                        HalfType::F16 => f16::from_f32(lcg(&mut s)).to_bits(),
                    })
                    .collect();
                let x: Vec<f32> = (0..t * cols).map(|_| lcg(&mut s)).collect();
                let w = HalfMatrix::new(kind, rows, cols, bits).expect("shape");
                let fast = matmul(&w, &x, t);
                for isa in crate::cpu::runnable() {
                    assert_eq!(matmul_with(isa, &w, &x, t), fast, "{kind:?} {isa}: not the same bits");
                }
                let slow = matmul_slow(&w, &x, t);
                for (a, b) in fast.iter().zip(&slow) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{kind:?} {rows}x{cols} t={t}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        assert!(HalfMatrix::new(HalfType::Bf16, 2, 3, vec![0; 5]).is_err());
    }
}
