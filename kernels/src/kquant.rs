//! GGUF's K-quant formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: 256-value super-blocks)
//! as matrix products, in llama.cpp's numerics: weights stay in the file's
//! blocks; activations are quantized as ggml does for their `vec_dot_type`,
//! Q8_K (see [`crate::kquant_q8k`]); every block's dot product is an exact
//! integer sum, then one or two f32 FMAs.
//!
//! The 32-value block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, with Q8_0 / Q8_1
//! activations) are not here: they live in [`crate::quant`] (GGUF layout,
//! scalar reference) and [`crate::quant_tiles`] (the decoder's tiled kernels).
//!
//! Variants: the scalar reference (`kquant_scalar`) and AVX2
//! (`kquant_avx2`), which performs the same float operations in the
//! same order, so both give the same bits for any batch. [`level`] names the
//! variant [`matmul`] runs: the widest implemented at or below
//! [`crate::cpu::selected`] that passes a self-check against the reference
//! (the AVX-VNNI and AVX-512 levels run the AVX2 code).

use crate::cpu::Isa;
use crate::kquant_q8k::{quantize_q8k, Q8K, QK_K};
use crate::kquant_scalar as scalar;
use crate::quant::ShapeError;
use rayon::prelude::*;
use std::sync::OnceLock;

/// The formats this module multiplies: the K-quants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KType {
    /// 256 values, 2 bits, 16 sub-blocks with 4-bit scales and mins.
    Q2K,
    /// 256 values, 3 bits, 16 sub-blocks with 6-bit signed scales.
    Q3K,
    /// 256 values, 4 bits, 8 sub-blocks with 6-bit scales and mins.
    Q4K,
    /// 256 values, 5 bits, 8 sub-blocks with 6-bit scales and mins.
    Q5K,
    /// 256 values, 6 bits, 16 sub-blocks with i8 scales.
    Q6K,
}

impl KType {
    /// Every format, in ggml's type order.
    pub const ALL: [KType; 5] = [KType::Q2K, KType::Q3K, KType::Q4K, KType::Q5K, KType::Q6K];

    /// Values per block (256 for every K-quant).
    pub fn block_size(self) -> usize {
        QK_K
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            KType::Q2K => 84,
            KType::Q3K => 110,
            KType::Q4K => 144,
            KType::Q5K => 176,
            KType::Q6K => 210,
        }
    }

    /// ggml's `ggml_type` number (as in GGUF tensor infos).
    pub fn ggml_type_id(self) -> u32 {
        match self {
            KType::Q2K => 10,
            KType::Q3K => 11,
            KType::Q4K => 12,
            KType::Q5K => 13,
            KType::Q6K => 14,
        }
    }

    /// The format with ggml type number `id`, if this module handles it.
    pub fn from_ggml_type_id(id: u32) -> Option<KType> {
        KType::ALL.into_iter().find(|k| k.ggml_type_id() == id)
    }
}

/// A weight matrix `[rows, cols]` in GGUF blocks, row-major.
#[derive(Debug, Clone)]
pub struct KMatrix {
    pub ktype: KType,
    pub rows: usize,
    pub cols: usize,
    data: Vec<u8>,
}

impl KMatrix {
    /// Wraps raw GGUF block bytes; `cols` must be a multiple of the block size.
    pub fn new(ktype: KType, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, ShapeError> {
        let bs = ktype.block_size();
        if !cols.is_multiple_of(bs) {
            return Err(ShapeError(format!("{ktype:?}: {cols} columns is not a multiple of {bs}")));
        }
        let want = (cols / bs)
            .checked_mul(ktype.block_bytes())
            .and_then(|n| n.checked_mul(rows))
            .ok_or_else(|| ShapeError(format!("{ktype:?} [{rows}, {cols}] is too large")))?;
        if data.len() != want {
            return Err(ShapeError(format!("{ktype:?} [{rows}, {cols}] needs {want} bytes, got {}", data.len())));
        }
        Ok(KMatrix { ktype, rows, cols, data })
    }

    /// The raw block bytes, row-major (what a GPU upload copies).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.ktype.block_size() * self.ktype.block_bytes()
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Dequantizes row `r` into `out` (`cols` values) in ggml's float order
    /// (its `dequantize_row_*`).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (bs, bb) = (self.ktype.block_size(), self.ktype.block_bytes());
        for (blk, o) in self.row(r).chunks_exact(bb).zip(out[..self.cols].chunks_exact_mut(bs)) {
            scalar::dequantize_block(self.ktype, blk, o);
        }
    }
}

/// `x` (length a multiple of 256) quantized as ggml quantizes it for the
/// K-quants' dot products, in ggml's bytes (`block_q8_K`). The 32-value block
/// formats' activations are [`crate::quant::q8_bytes`].
pub fn activation_bytes(x: &[f32]) -> Vec<u8> {
    quantize_q8k(x).to_ggml_bytes()
}

/// The implemented variant that runs for level `isa`.
pub(crate) fn variant(isa: Isa) -> Isa {
    if cfg!(target_arch = "x86_64") && isa >= Isa::Avx2 {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

/// The variant [`matmul`] runs (chosen and self-checked once).
pub fn level() -> Isa {
    static LEVEL: OnceLock<Isa> = OnceLock::new();
    *LEVEL.get_or_init(|| checked_level("kquant", self_check))
}

/// The variant for the selected level if `check` finds it gives the scalar
/// reference's bits, else scalar (with a warning naming `family`).
pub(crate) fn checked_level(family: &str, check: fn(Isa) -> bool) -> Isa {
    let want = variant(crate::cpu::selected());
    if want != Isa::Scalar && want.supported() {
        if check(want) {
            return want;
        }
        eprintln!("{family}: the {want} kernels disagree with the scalar reference; using scalar");
    }
    Isa::Scalar
}

/// Whether `isa`'s kernels give the reference's bits on small random blocks
/// of every format, for batches of 1 to 5 activation rows.
fn self_check(isa: Isa) -> bool {
    let (rows, t) = (3, 5);
    KType::ALL.into_iter().enumerate().all(|(i, kt)| {
        let cols = 2 * kt.block_size();
        let Ok(w) = KMatrix::new(kt, rows, cols, random_blocks(kt, rows * 2, 11 + i as u64)) else {
            return false;
        };
        let x = crate::noise(23 + i as u64, t * cols);
        run(isa, &[&w], &x, t)[0]
            .iter()
            .zip(&run(Isa::Scalar, &[&w], &x, t)[0])
            .all(|(a, b)| a.to_bits() == b.to_bits())
    })
}


/// `n` blocks of `kt` with random quants and scales and small finite f16
/// `d` / `dmin` (every bit pattern of the other bytes is a valid block).
pub(crate) fn random_blocks(kt: KType, n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out: Vec<u8> = (0..n * kt.block_bytes())
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect();
    let (d_at, m_at) = scalar::d_offsets(kt);
    let has_m = scalar::has_mins(kt);
    for (i, blk) in out.chunks_exact_mut(kt.block_bytes()).enumerate() {
        let d = half::f16::from_f32(0.001 + 0.0001 * (i % 7) as f32);
        blk[d_at..d_at + 2].copy_from_slice(&d.to_le_bytes());
        if has_m {
            let m = half::f16::from_f32(0.002 - 0.0003 * (i % 5) as f32);
            blk[m_at..m_at + 2].copy_from_slice(&m.to_le_bytes());
        }
    }
    out
}

/// Rows per parallel task (SmolLM2's 576-row `ffn_down` in 18 tasks, which
/// two threads share evenly).
const ROWS_PER_TASK: usize = 32;

/// The kernels of one variant, ready to run.
#[derive(Clone, Copy)]
enum Kernels {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(crate::kquant_avx2::Avx2),
}

impl Kernels {
    /// Variant `isa`'s kernels; panics if the CPU cannot run them.
    fn new(isa: Isa) -> Kernels {
        match variant(isa) {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => match crate::kquant_avx2::Avx2::new() {
                Some(k) => Kernels::Avx2(k),
                None => panic!("this CPU cannot run {isa}"),
            },
            _ => Kernels::Scalar,
        }
    }

    /// `out[c] = row · act c` for every activation row.
    fn dots(self, kt: KType, row: &[u8], acts: &[Q8K], out: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2(k) => k.dots_k(kt, row, acts, out),
            Kernels::Scalar => {
                for (o, a) in out.iter_mut().zip(acts) {
                    *o = scalar::dot_k(kt, row, a);
                }
            }
        }
    }
}

/// Every weight times the same `x`, by the variant for level `isa`: the
/// activations are quantized once, and all the weights' row chunks go over
/// the rayon pool in one pass.
fn run(isa: Isa, ws: &[&KMatrix], x: &[f32], t: usize) -> Vec<Vec<f32>> {
    let Some(first) = ws.first() else { return Vec::new() };
    let cols = first.cols;
    assert!(ws.iter().all(|w| w.cols == cols), "matmul_many: weights differ in columns");
    assert!(x.len() >= t * cols, "activations shorter than t × cols");
    if t == 0 {
        return ws.iter().map(|_| Vec::new()).collect();
    }
    let kernels = Kernels::new(isa);
    let acts: Vec<Q8K> = x.chunks_exact(cols).take(t).map(quantize_q8k).collect();
    let mut yts: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; w.rows * t]).collect();
    let tasks: Vec<(usize, usize, &mut [f32])> = yts
        .iter_mut()
        .enumerate()
        .flat_map(|(i, y)| y.chunks_mut(ROWS_PER_TASK * t).enumerate().map(move |(j, c)| (i, j, c)))
        .collect();
    tasks.into_par_iter().for_each(|(i, j, out)| {
        let w = ws[i];
        for (k, o) in out.chunks_exact_mut(t).enumerate() {
            kernels.dots(w.ktype, w.row(j * ROWS_PER_TASK + k), &acts, o);
        }
    });
    yts.into_iter().zip(ws).map(|(yt, w)| crate::rows_to_tokens(yt, w.rows, t)).collect()
}

/// `y = x · wᵀ` for `x` `[t, cols]` (row-major), giving `[t, rows]`, by the
/// variant [`level`] names.
pub fn matmul(w: &KMatrix, x: &[f32], t: usize) -> Vec<f32> {
    run(level(), &[w], x, t).pop().unwrap_or_default()
}

/// [`matmul`] for several weights with the same columns and the same `x`
/// (Q, K, V; gate, up): `x` is quantized once and all rows share one pass.
pub fn matmul_many(ws: &[&KMatrix], x: &[f32], t: usize) -> Vec<Vec<f32>> {
    run(level(), ws, x, t)
}

/// [`matmul`] by the variant for level `isa` (levels above AVX2 run the AVX2
/// code), for tests and benches. Panics if the CPU cannot run it.
pub fn matmul_with(isa: Isa, w: &KMatrix, x: &[f32], t: usize) -> Vec<f32> {
    assert!(isa.supported(), "this CPU cannot run {isa}");
    run(isa, &[w], x, t).pop().unwrap_or_default()
}

/// Reference for [`matmul`]: dequantized weights times unquantized activations.
pub fn matmul_slow(w: &KMatrix, x: &[f32], t: usize) -> Vec<f32> {
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

