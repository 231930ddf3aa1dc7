//! GGUF's 32-value block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the activations they
//! multiply, in llama.cpp's numerics: activations are quantized per block to
//! Q8_0 / Q8_1 exactly as ggml does it (scale `amax / 127`, round half away from
//! zero, Q8_1's block sum `s = d · Σq` taken in f32 before rounding to f16), and
//! block dot products are integer sums scaled in f32.
//!
//! [`QMatrix`] holds a weight as the file stores it (what the GPU uploads);
//! [`matmul`] here is the scalar reference whose bits every SIMD variant in
//! [`crate::quant_tiles`] reproduces, and [`matmul_slow`] the independent one:
//! dequantize, then a plain f32 product.

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
    /// `{d: f16, qh: u32, qs: [u8; 16]}`, `x = (q - 16) · d`, q's fifth bit in `qh`.
    Q5_0,
    /// `{d: f16, m: f16, qh: u32, qs: [u8; 16]}`, `x = q · d + m`.
    Q5_1,
}

impl QType {
    /// Bytes per block of 32 values.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::Q4_0 => 18,
            QType::Q4_1 => 20,
            QType::Q8_0 => 34,
            QType::Q5_0 => 22,
            QType::Q5_1 => 24,
        }
    }

    /// Where a block's 16 bytes of low nibbles start (Q4 and Q5 types).
    pub(crate) fn nibbles_at(self) -> usize {
        match self {
            QType::Q4_0 => 2,
            QType::Q4_1 => 4,
            QType::Q5_0 => 6,
            QType::Q5_1 => 8,
            QType::Q8_0 => 2,
        }
    }

    /// Whether values carry an offset `m` (`x = q · d + m`).
    pub(crate) fn has_min(self) -> bool {
        matches!(self, QType::Q4_1 | QType::Q5_1)
    }

    /// The quants' implicit offset (`x = (q - off) · d`): 8 for Q4_0, 16 for Q5_0.
    pub(crate) fn offset(self) -> i32 {
        match self {
            QType::Q4_0 => 8,
            QType::Q5_0 => 16,
            _ => 0,
        }
    }
}

/// Value `j` (0..32) of a Q4/Q5 block's quants, unsigned, with Q5's fifth bit.
#[inline(always)]
pub(crate) fn nibble_quant(qtype: QType, blk: &[u8], j: usize) -> i32 {
    let at = qtype.nibbles_at();
    let byte = blk[at + j % 16];
    let q = if j < 16 { byte & 0x0F } else { byte >> 4 } as i32;
    match qtype {
        QType::Q5_0 | QType::Q5_1 => {
            let h = at - 4;
            let qh = u32::from_le_bytes([blk[h], blk[h + 1], blk[h + 2], blk[h + 3]]);
            q | (((qh >> j) & 1) as i32) << 4
        }
        _ => q,
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
                QType::Q8_0 => {
                    for j in 0..BLOCK {
                        o[j] = chunk[2 + j] as i8 as f32 * d;
                    }
                }
                qt if qt.has_min() => {
                    let m = f16_at(chunk, 2);
                    for (j, v) in o.iter_mut().enumerate() {
                        *v = nibble_quant(qt, chunk, j) as f32 * d + m;
                    }
                }
                qt => {
                    for (j, v) in o.iter_mut().enumerate() {
                        *v = (nibble_quant(qt, chunk, j) - qt.offset()) as f32 * d;
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
    /// `Σq` per block, exact (Q4_0's `-8` offset is taken off with it).
    pub(crate) isum: Vec<i32>,
    pub(crate) qs: Vec<i8>,
}

/// One block of [`quantize_q8`], the scalar reference: `(d, s, Σq)`.
pub(crate) fn quantize_block(xs: &[f32], q: &mut [i8]) -> (f32, f32, i32) {
    let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, v) in q.iter_mut().zip(xs) {
        *q = (v * id).round() as i8;
        sum += *q as i32;
    }
    (f16::from_f32(d).to_f32(), f16::from_f32(sum as f32 * d).to_f32(), sum)
}

/// Quantizes `x` (length a multiple of 32) as ggml's `quantize_row_q8_1`
/// (which also gives the Q8_0 values: same scales and quants).
pub fn quantize_q8(x: &[f32]) -> Q8Row {
    let nb = x.len() / BLOCK;
    let mut row = Q8Row {
        d: Vec::with_capacity(nb),
        s: Vec::with_capacity(nb),
        isum: Vec::with_capacity(nb),
        qs: vec![0; x.len()],
    };
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::selected() >= crate::cpu::Isa::Avx2 {
        // SAFETY: the CPU has AVX2, FMA and F16C (`selected` never exceeds
        // what it has); `qs` holds `x.len()` values.
        #[allow(unsafe_code)]
        unsafe {
            crate::rows_x86::quantize_row(&x[..nb * BLOCK], &mut row.qs, &mut row.d, &mut row.s, &mut row.isum)
        };
        return row;
    }
    for (b, xs) in x.chunks_exact(BLOCK).enumerate() {
        let (d, s, sum) = quantize_block(xs, &mut row.qs[b * BLOCK..(b + 1) * BLOCK]);
        row.d.push(d);
        row.s.push(s);
        row.isum.push(sum);
    }
    row
}

/// [`quantize_q8`] of `x` (length a multiple of 32) in ggml's bytes: per block
/// `block_q8_0` (`d: f16, qs: [i8; 32]`), or with `with_sum` `block_q8_1`
/// (`d: f16, s: f16, qs: [i8; 32]`), the activations of Q4_1 / Q5_1.
pub fn q8_bytes(x: &[f32], with_sum: bool) -> Vec<u8> {
    let q = quantize_q8(x);
    let mut out = Vec::with_capacity(q.d.len() * (BLOCK + if with_sum { 4 } else { 2 }));
    for (b, &d) in q.d.iter().enumerate() {
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        if with_sum {
            out.extend_from_slice(&f16::from_f32(q.s[b]).to_le_bytes());
        }
        out.extend(q.qs[b * BLOCK..(b + 1) * BLOCK].iter().map(|&v| v as u8));
    }
    out
}

/// The integer part of block `b`'s dot product: `Σ q_w · q_a`, with Q4_0's
/// offset of 8 taken off through the activations' exact block sum.
#[inline(always)]
fn block_sumi(qtype: QType, blk: &[u8], a: &Q8Row, b: usize) -> i32 {
    let qa = &a.qs[b * BLOCK..(b + 1) * BLOCK];
    match qtype {
        QType::Q8_0 => (0..BLOCK).map(|j| blk[2 + j] as i8 as i32 * qa[j] as i32).sum(),
        qt => {
            let sumi: i32 = (0..BLOCK).map(|j| nibble_quant(qt, blk, j) * qa[j] as i32).sum();
            sumi - qt.offset() * a.isum[b]
        }
    }
}

/// The scalar reference of one weight row · one activation row, in the order
/// every SIMD variant keeps per lane (so they all give these bits): per block,
/// `acc = fma(Σq_w·q_a, d_w·d_a, acc)`, then for Q4_1 and Q5_1
/// `acc = fma(m_w, s_a, acc)`.
pub(crate) fn dot_row(qtype: QType, w: &[u8], a: &Q8Row) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in w.chunks_exact(qtype.block_bytes()).enumerate() {
        let sumi = block_sumi(qtype, blk, a, b);
        acc = (sumi as f32).mul_add(f16_at(blk, 0) * a.d[b], acc);
        if qtype.has_min() {
            acc = f16_at(blk, 2).mul_add(a.s[b], acc);
        }
    }
    acc
}

/// Rows per parallel task of the reference.
const ROWS_PER_TASK: usize = 64;

/// `y = x · wᵀ` for `x` `[t, cols]` (row-major), giving `[t, rows]`, by the
/// scalar reference on the GGUF layout (rows over the rayon pool). The decoder
/// runs [`crate::quant_tiles`], which gives the same bits faster.
pub fn matmul(w: &QMatrix, x: &[f32], t: usize) -> Vec<f32> {
    assert!(x.len() >= t * w.cols, "activations shorter than t × cols");
    let acts: Vec<Q8Row> = x.chunks_exact(w.cols).take(t).map(quantize_q8).collect();
    let mut yt = vec![0f32; w.rows * t];
    yt.par_chunks_mut(ROWS_PER_TASK * t).enumerate().for_each(|(i, out)| {
        for (k, o) in out.chunks_exact_mut(t).enumerate() {
            let row = w.row(i * ROWS_PER_TASK + k);
            for (v, a) in o.iter_mut().zip(&acts) {
                *v = dot_row(w.qtype, row, a);
            }
        }
    });
    crate::rows_to_tokens(yt, w.rows, t)
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
pub(crate) mod tests {
    use super::*;

    pub(crate) use crate::noise;


    /// Quantizes `w` with candle (an independent implementation of the GGUF formats).
    pub(crate) fn candle_matrix(qt: QType, w: &[f32], rows: usize, cols: usize) -> (QMatrix, candle_core::quantized::QMatMul) {
        use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
        let dtype = match qt {
            QType::Q4_0 => GgmlDType::Q4_0,
            QType::Q4_1 => GgmlDType::Q4_1,
            QType::Q8_0 => GgmlDType::Q8_0,
            QType::Q5_0 => GgmlDType::Q5_0,
            QType::Q5_1 => GgmlDType::Q5_1,
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
        for qt in crate::quant_tiles::TYPES {
            let (m, cm) = candle_matrix(qt, &w, rows, cols);
            let fast = matmul(&m, &x, t);
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
        for qt in crate::quant_tiles::TYPES {
            let (m, _) = candle_matrix(qt, &w, rows, cols);
            let all = matmul(&m, &x, t);
            for j in 0..t {
                let one = matmul(&m, &x[j * cols..(j + 1) * cols], 1);
                assert_eq!(&all[j * rows..(j + 1) * rows], &one[..], "{qt:?} row {j}");
            }
        }
    }

    #[test]
    fn q8_1_block_sum_is_taken_in_f32() {
        // 32 values of 1.0: d = 1/127, q = 127 each, Σq = 4064; s = d·Σq = 32.
        let row = quantize_q8(&[1.0; 32]);
        assert_eq!(row.qs[0], 127);
        assert_eq!(row.s[0], 32.0);
        assert_eq!(row.isum[0], 4064);
    }

    /// The vector quantizer gives the scalar one's bits, ties included
    /// (values whose scaled form ends in exactly .5 round away from zero).
    #[test]
    fn vector_quantization_equals_the_scalar_one() {
        let mut x = noise(21, 32 * 64);
        // Block 0: amax 127 so that id = 1 and the scaled values are the values.
        for (i, v) in x[..32].iter_mut().enumerate() {
            *v = [0.5, -0.5, 1.5, -2.5, 126.5, -126.5, 127.0, -3.0][i % 8];
        }
        x[32..64].fill(0.0);
        let row = quantize_q8(&x);
        for b in 0..64 {
            let mut q = [0i8; 32];
            let (d, s, sum) = quantize_block(&x[b * 32..(b + 1) * 32], &mut q);
            assert_eq!((row.d[b], row.s[b], row.isum[b]), (d, s, sum), "block {b}");
            assert_eq!(&row.qs[b * 32..(b + 1) * 32], &q[..], "block {b}");
        }
        assert_eq!(&row.qs[..4], &[1, -1, 2, -3]);
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(QMatrix::new(QType::Q8_0, 2, 30, vec![]).is_err());
        assert!(QMatrix::new(QType::Q8_0, 2, 32, vec![0; 10]).is_err());
    }
}
