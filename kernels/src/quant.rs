//! Quantized matrix × vector products for the CPU, in llama.cpp's numerics.
//!
//! Weights stay in their GGUF blocks (Q4_0, Q4_1, Q8_0); activations are
//! quantized per 32-value block to Q8_0 / Q8_1 exactly as ggml does it (scale
//! `amax / 127`, round half away from zero, Q8_1's block sum `s = d · Σq` taken in
//! f32 before rounding to f16), and block dot products are integer sums scaled in
//! f32. Output rows are split over the rayon pool, so both cores work on a single
//! decode step, and no weight is ever dequantized as a whole.
//!
//! [`matmul_slow`] is the reference: dequantize, then a plain f32 product.

use half::f16;
use rayon::prelude::*;

/// Values per quantization block.
pub const BLOCK: usize = 32;

/// The GGUF block formats this module computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    /// `{d: f16, qs: [u8; 16]}`, `x = (q - 8) · d`.
    Q4_0,
    /// `{d: f16, m: f16, qs: [u8; 16]}`, `x = q · d + m`.
    Q4_1,
    /// `{d: f16, qs: [i8; 32]}`, `x = q · d`.
    Q8_0,
}

impl QType {
    /// Bytes per block of 32 values.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::Q4_0 => 18,
            QType::Q4_1 => 20,
            QType::Q8_0 => 34,
        }
    }
}

/// A weight matrix `[rows, cols]` in GGUF blocks, row-major.
#[derive(Debug, Clone)]
pub struct QMatrix {
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    data: Vec<u8>,
}

/// Why a matrix could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

impl QMatrix {
    /// Wraps raw GGUF block bytes.
    pub fn new(qtype: QType, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, ShapeError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(ShapeError(format!("{cols} columns is not a multiple of {BLOCK}")));
        }
        let want = rows * cols / BLOCK * qtype.block_bytes();
        if data.len() != want {
            return Err(ShapeError(format!("{qtype:?} [{rows}, {cols}] needs {want} bytes, got {}", data.len())));
        }
        Ok(QMatrix { qtype, rows, cols, data })
    }

    /// The raw block bytes, row-major (what a GPU upload copies).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.cols / BLOCK * self.qtype.block_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let bb = self.qtype.block_bytes();
        for (b, chunk) in self.row(r).chunks_exact(bb).enumerate() {
            let o = &mut out[b * BLOCK..(b + 1) * BLOCK];
            let d = f16_at(chunk, 0);
            match self.qtype {
                QType::Q4_0 => {
                    for j in 0..16 {
                        o[j] = ((chunk[2 + j] & 0x0F) as f32 - 8.0) * d;
                        o[j + 16] = ((chunk[2 + j] >> 4) as f32 - 8.0) * d;
                    }
                }
                QType::Q4_1 => {
                    let m = f16_at(chunk, 2);
                    for j in 0..16 {
                        o[j] = (chunk[4 + j] & 0x0F) as f32 * d + m;
                        o[j + 16] = (chunk[4 + j] >> 4) as f32 * d + m;
                    }
                }
                QType::Q8_0 => {
                    for j in 0..BLOCK {
                        o[j] = chunk[2 + j] as i8 as f32 * d;
                    }
                }
            }
        }
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// One activation row quantized to 8 bits per value, blockwise.
pub struct Q8Row {
    /// Block scales, rounded to f16 as ggml stores them.
    pub(crate) d: Vec<f32>,
    /// `d · Σq` per block (Q8_1 only), rounded to f16.
    pub(crate) s: Vec<f32>,
    pub(crate) qs: Vec<i8>,
}

/// Quantizes `x` (length a multiple of 32) as ggml's `quantize_row_q8_1`
/// (which also gives the Q8_0 values: same scales and quants).
pub fn quantize_q8(x: &[f32]) -> Q8Row {
    let nb = x.len() / BLOCK;
    let mut row = Q8Row {
        d: Vec::with_capacity(nb),
        s: Vec::with_capacity(nb),
        qs: vec![0; x.len()],
    };
    for (b, xs) in x.chunks_exact(BLOCK).enumerate() {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in row.qs[b * BLOCK..(b + 1) * BLOCK].iter_mut().zip(xs) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        row.d.push(f16::from_f32(d).to_f32());
        row.s.push(f16::from_f32(sum as f32 * d).to_f32());
    }
    row
}

#[inline(always)]
fn dot_row(qtype: QType, w: &[u8], a: &Q8Row) -> f32 {
    let mut acc = 0f32;
    match qtype {
        QType::Q4_0 => {
            for (b, blk) in w.chunks_exact(18).enumerate() {
                let qa = &a.qs[b * BLOCK..(b + 1) * BLOCK];
                let mut sumi = 0i32;
                for j in 0..16 {
                    let lo = (blk[2 + j] & 0x0F) as i32 - 8;
                    let hi = (blk[2 + j] >> 4) as i32 - 8;
                    sumi += lo * qa[j] as i32 + hi * qa[j + 16] as i32;
                }
                acc += sumi as f32 * (f16_at(blk, 0) * a.d[b]);
            }
        }
        QType::Q4_1 => {
            for (b, blk) in w.chunks_exact(20).enumerate() {
                let qa = &a.qs[b * BLOCK..(b + 1) * BLOCK];
                let mut sumi = 0i32;
                for j in 0..16 {
                    let lo = (blk[4 + j] & 0x0F) as i32;
                    let hi = (blk[4 + j] >> 4) as i32;
                    sumi += lo * qa[j] as i32 + hi * qa[j + 16] as i32;
                }
                acc += (f16_at(blk, 0) * a.d[b]) * sumi as f32 + f16_at(blk, 2) * a.s[b];
            }
        }
        QType::Q8_0 => {
            for (b, blk) in w.chunks_exact(34).enumerate() {
                let qa = &a.qs[b * BLOCK..(b + 1) * BLOCK];
                let mut sumi = 0i32;
                for j in 0..BLOCK {
                    sumi += blk[2 + j] as i8 as i32 * qa[j] as i32;
                }
                acc += sumi as f32 * (f16_at(blk, 0) * a.d[b]);
            }
        }
    }
    acc
}

fn dot_rows_portable(w: &QMatrix, rows: std::ops::Range<usize>, a: &Q8Row, out: &mut [f32]) {
    for (o, r) in out.iter_mut().zip(rows) {
        *o = dot_row(w.qtype, w.row(r), a);
    }
}

#[allow(unsafe_code)]
fn dot_rows(w: &QMatrix, rows: std::ops::Range<usize>, a: &Q8Row, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        for (o, r) in out.iter_mut().zip(rows) {
            // SAFETY: the CPU supports the features (checked once), and the row
            // holds as many blocks as the activations (checked in `matmul`).
            *o = unsafe { crate::quant_avx2::dot_row(w.qtype, w.row(r), a) };
        }
        return;
    }
    dot_rows_portable(w, rows, a, out)
}

/// Whether [`matmul`] runs the AVX2 kernel (x86-64 with AVX2, FMA and F16C),
/// whose bits the CUDA block GEMV reproduces; else the portable one.
pub fn uses_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_avx2();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    })
}

/// Rows per parallel task: enough work to pay for the hand-off.
const ROWS_PER_TASK: usize = 64;

/// Activation rows that one pass over a weight row serves (AVX2 path).
const ACTS_PER_PASS: usize = 4;

/// `out[k · t + j]` = row `start + k` · activation `j`, for the rows of one task.
#[allow(unsafe_code)]
fn task(w: &QMatrix, start: usize, acts: &[Q8Row], out: &mut [f32]) {
    let t = acts.len();
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        use crate::quant_avx2::dot_row_n;
        for (k, o) in out.chunks_exact_mut(t).enumerate() {
            let row = w.row(start + k);
            for (g, a) in acts.chunks(ACTS_PER_PASS).enumerate() {
                let o = &mut o[g * ACTS_PER_PASS..];
                // SAFETY: the CPU supports the features (checked once), and the
                // row holds as many blocks as each activation row (checked in
                // `matmul`).
                unsafe {
                    match a {
                        [a0, a1, a2, a3] => dot_row_n(w.qtype, row, [a0, a1, a2, a3], o),
                        [a0, a1, a2] => dot_row_n(w.qtype, row, [a0, a1, a2], o),
                        [a0, a1] => dot_row_n(w.qtype, row, [a0, a1], o),
                        [a0] => dot_row_n(w.qtype, row, [a0], o),
                        _ => unreachable!("chunks of 1 to {ACTS_PER_PASS}"),
                    }
                }
            }
        }
        return;
    }
    let n = out.len() / t;
    let mut col = vec![0f32; n];
    for (j, a) in acts.iter().enumerate() {
        dot_rows(w, start..start + n, a, &mut col);
        for (k, v) in col.iter().enumerate() {
            out[k * t + j] = *v;
        }
    }
}

/// `y = x · wᵀ` for `x` `[t, cols]` (row-major), giving `[t, rows]`. Each weight
/// row is read once and used for all `t` activation rows (prefill, batches).
pub fn matmul(w: &QMatrix, x: &[f32], t: usize) -> Vec<f32> {
    assert!(x.len() >= t * w.cols, "activations shorter than t × cols");
    let acts: Vec<Q8Row> = x.chunks_exact(w.cols).take(t).map(quantize_q8).collect();
    // Computed as [rows, t] so that tasks own disjoint slices, then transposed.
    let mut yt = vec![0f32; w.rows * t];
    yt.par_chunks_mut(ROWS_PER_TASK * t)
        .enumerate()
        .for_each(|(i, out)| task(w, i * ROWS_PER_TASK, &acts, out));
    crate::rows_to_tokens(yt, w.rows, t)
}

/// [`matmul`] of several weights that read the same activations (Q, K and V;
/// gate and up): the activations are quantized once and all weights' rows are
/// shared out in one parallel pass, so the threads meet once, not per weight.
pub fn matmul_many(ws: &[&QMatrix], x: &[f32], t: usize) -> Vec<Vec<f32>> {
    let Some(first) = ws.first() else { return Vec::new() };
    assert!(ws.iter().all(|w| w.cols == first.cols), "weights of one pass share their input width");
    assert!(x.len() >= t * first.cols, "activations shorter than t × cols");
    let acts: Vec<Q8Row> = x.chunks_exact(first.cols).take(t).map(quantize_q8).collect();
    let mut yts: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; w.rows * t]).collect();
    let tasks: Vec<(&QMatrix, usize, &mut [f32])> = ws
        .iter()
        .zip(yts.iter_mut())
        .flat_map(|(w, yt)| yt.chunks_mut(ROWS_PER_TASK * t).enumerate().map(move |(i, out)| (*w, i * ROWS_PER_TASK, out)))
        .collect();
    tasks.into_par_iter().for_each(|(w, start, out)| task(w, start, &acts, out));
    ws.iter().zip(yts).map(|(w, yt)| crate::rows_to_tokens(yt, w.rows, t)).collect()
}

/// Reference for [`matmul`]: dequantized weights times unquantized activations.
pub fn matmul_slow(w: &QMatrix, x: &[f32], t: usize) -> Vec<f32> {
    let mut row = vec![0f32; w.cols];
    let mut y = vec![0f32; t * w.rows];
    for r in 0..w.rows {
        w.dequantize_row(r, &mut row);
        for i in 0..t {
            let xi = &x[i * w.cols..(i + 1) * w.cols];
            y[i * w.rows + r] = row.iter().zip(xi).map(|(a, b)| a * b).sum();
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream for test data.
    fn noise(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Quantizes `w` with candle (an independent implementation of the GGUF formats).
    fn candle_matrix(qt: QType, w: &[f32], rows: usize, cols: usize) -> (QMatrix, candle_core::quantized::QMatMul) {
        use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
        let dtype = match qt {
            QType::Q4_0 => GgmlDType::Q4_0,
            QType::Q4_1 => GgmlDType::Q4_1,
            QType::Q8_0 => GgmlDType::Q8_0,
        };
        let t = candle_core::Tensor::from_vec(w.to_vec(), (rows, cols), &candle_core::Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&t, dtype).expect("quantize");
        let bytes = q.data().expect("bytes").to_vec();
        let ours = QMatrix::new(qt, rows, cols, bytes).expect("matrix");
        (ours, QMatMul::from_qtensor(q).expect("qmatmul"))
    }

    #[test]
    fn quantized_matmul_matches_dequantized_reference_and_candle() {
        use candle_core::Module;
        let (rows, cols, t) = (200, 256, 3);
        let w = noise(1, rows * cols);
        let x = noise(2, t * cols);
        for qt in [QType::Q4_0, QType::Q4_1, QType::Q8_0] {
            let (m, cm) = candle_matrix(qt, &w, rows, cols);
            let fast = matmul(&m, &x, t);
            // The SIMD path and the portable loop compute the same sums.
            let acts: Vec<Q8Row> = x.chunks_exact(cols).map(quantize_q8).collect();
            for (i, a) in acts.iter().enumerate() {
                let mut portable = vec![0f32; rows];
                dot_rows_portable(&m, 0..rows, a, &mut portable);
                let err = portable.iter().zip(&fast[i * rows..]).fold(0f32, |e, (p, q)| e.max((p - q).abs()));
                assert!(err < 1e-3, "{qt:?}: SIMD vs portable max |Δ| {err}");
            }
            let slow = matmul_slow(&m, &x, t);
            let scale = slow.iter().fold(0f32, |a, v| a.max(v.abs()));
            let err = fast.iter().zip(&slow).fold(0f32, |a, (p, q)| a.max((p - q).abs()));
            // Only the 8-bit activations differ: well under 1% of the output range.
            assert!(err < 0.01 * scale, "{qt:?}: max |Δ| {err} vs scale {scale}");
            let xt = candle_core::Tensor::from_vec(x.clone(), (t, cols), &candle_core::Device::Cpu).expect("x");
            let theirs: Vec<f32> = cm.forward(&xt).expect("candle").flatten_all().expect("flat").to_vec1().expect("vec");
            let err = fast.iter().zip(&theirs).fold(0f32, |a, (p, q)| a.max((p - q).abs()));
            assert!(err < 2e-3 * scale, "{qt:?} vs candle: max |Δ| {err}");
        }
    }

    /// A row's result does not depend on how many rows it is computed with.
    #[test]
    fn batched_rows_give_the_same_bits_as_single_rows() {
        let (rows, cols, t) = (130, 96, 7);
        let w = noise(3, rows * cols);
        let x = noise(4, t * cols);
        for qt in [QType::Q4_0, QType::Q4_1, QType::Q8_0] {
            let (m, _) = candle_matrix(qt, &w, rows, cols);
            let all = matmul(&m, &x, t);
            for j in 0..t {
                let one = matmul(&m, &x[j * cols..(j + 1) * cols], 1);
                assert_eq!(&all[j * rows..(j + 1) * rows], &one[..], "{qt:?} row {j}");
            }
        }
    }

    /// One pass over several weights gives each weight's own matmul, bit for bit.
    #[test]
    fn matmul_many_equals_one_matmul_per_weight() {
        let (cols, t) = (64, 5);
        let x = noise(5, t * cols);
        for qt in [QType::Q4_0, QType::Q4_1, QType::Q8_0] {
            let ms: Vec<QMatrix> = [(70, 6), (33, 7), (128, 8)]
                .iter()
                .map(|&(rows, seed)| candle_matrix(qt, &noise(seed, rows * cols), rows, cols).0)
                .collect();
            let refs: Vec<&QMatrix> = ms.iter().collect();
            let many = matmul_many(&refs, &x, t);
            for (m, y) in ms.iter().zip(&many) {
                assert_eq!(y, &matmul(m, &x, t), "{qt:?} {} rows", m.rows);
            }
        }
        assert!(matmul_many(&[], &x, t).is_empty());
    }

    #[test]
    fn q8_1_block_sum_is_taken_in_f32() {
        // 32 values of 1.0: d = 1/127, q = 127 each, Σq = 4064; s = d·Σq = 32.
        let row = quantize_q8(&[1.0; 32]);
        assert_eq!(row.qs[0], 127);
        assert_eq!(row.s[0], 32.0);
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(QMatrix::new(QType::Q8_0, 2, 30, vec![]).is_err());
        assert!(QMatrix::new(QType::Q8_0, 2, 32, vec![0; 10]).is_err());
    }
}
