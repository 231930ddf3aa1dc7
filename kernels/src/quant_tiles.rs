//! The decoder's Q4_0 / Q4_1 / Q8_0 matmul: weights repacked at load into
//! tiles of 16 rows, so that one vector register holds four quants of each of
//! 8 (AVX2) or 16 (AVX-512) rows, and one broadcast of four activation bytes
//! multiplies all of them. Each lane then owns one output row: no horizontal
//! sums, one scale FMA per block for 8 or 16 rows, and every weight block is
//! unpacked once for up to four activation rows (decode batches, prefill).
//!
//! Every variant ([`crate::cpu::Isa`]) computes each lane in the order of the
//! scalar reference [`crate::quant::matmul`] (integer block sums are exact;
//! then one `fma` per block), so all of them give the same bits, whatever the
//! batch. The variant in use is chosen once: the widest the CPU has (capped by
//! `REKA_CPU_ISA`) that also passes a self-check against the scalar code.
//!
//! Tile layout, per tile of 16 rows and per 32-value block (`16 ×` the GGUF
//! block's bytes): the 16 rows' `d` (f16), then for Q4_1 their `m` (f16), then
//! the quants in groups of 64 bytes: group `k` holds bytes `4k..4k+4` of each
//! row's GGUF quants, row `i` at bytes `4i..4i+4` (Q4: 4 groups, a byte's low
//! nibble is value `j`, its high nibble value `j + 16`; Q8_0: 8 groups).

use crate::cpu::Isa;
use crate::quant::{quantize_q8, QMatrix, QType, Q8Row, BLOCK};
pub use crate::tile_pass::TILE;
use crate::tile_pass::{self, TileOut};
use std::sync::OnceLock;

/// A weight matrix `[rows, cols]` in the tile layout (rows padded to 16 with
/// zero blocks).
#[derive(Debug, Clone)]
pub struct Tiled {
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    data: Vec<u8>,
}

/// Byte offset of the quants within a tile-block.
pub(crate) fn quants_at(qtype: QType) -> usize {
    let highs = if matches!(qtype, QType::Q5_0 | QType::Q5_1) { 64 } else { 0 };
    highs_at(qtype) + highs
}

/// Byte offset of the Q5 types' fifth bits within a tile-block (after the
/// scales): row `i`'s 4 bytes at `4i`, byte `k` holding the bits of values
/// `4k..4k+4` in its low nibble and of values `16+4k..16+4k+4` in its high one.
pub(crate) fn highs_at(qtype: QType) -> usize {
    if qtype.has_min() {
        64
    } else {
        32
    }
}

/// Every block type the tiles compute with.
pub const TYPES: [QType; 5] = [QType::Q4_0, QType::Q4_1, QType::Q8_0, QType::Q5_0, QType::Q5_1];

impl Tiled {
    /// Repacks a GGUF-layout matrix.
    pub fn from_matrix(m: &QMatrix) -> Tiled {
        let bb = m.qtype.block_bytes();
        let nb = m.cols / BLOCK;
        let src = m.bytes();
        let qsrc = m.qtype.nibbles_at();
        let groups = if m.qtype == QType::Q8_0 { 8 } else { 4 };
        let qdst = quants_at(m.qtype);
        let data = tile_pass::repack(m.rows, nb * TILE * bb, |r, i, tile| {
            for b in 0..nb {
                let blk = &src[(r * nb + b) * bb..(r * nb + b + 1) * bb];
                let out = &mut tile[b * TILE * bb..(b + 1) * TILE * bb];
                out[2 * i..2 * i + 2].copy_from_slice(&blk[0..2]);
                if m.qtype.has_min() {
                    out[32 + 2 * i..34 + 2 * i].copy_from_slice(&blk[2..4]);
                }
                if matches!(m.qtype, QType::Q5_0 | QType::Q5_1) {
                    let h = qsrc - 4;
                    let qh = u32::from_le_bytes([blk[h], blk[h + 1], blk[h + 2], blk[h + 3]]);
                    let at = highs_at(m.qtype) + 4 * i;
                    for k in 0..4 {
                        out[at + k] = (((qh >> (4 * k)) & 0xF) | (((qh >> (16 + 4 * k)) & 0xF) << 4)) as u8;
                    }
                }
                for k in 0..groups {
                    let at = qdst + 64 * k + 4 * i;
                    out[at..at + 4].copy_from_slice(&blk[qsrc + 4 * k..qsrc + 4 * k + 4]);
                }
            }
        });
        Tiled { qtype: m.qtype, rows: m.rows, cols: m.cols, data }
    }

    /// Blocks per row.
    fn nb(&self) -> usize {
        self.cols / BLOCK
    }

    /// The bytes of tile `tile` (all its blocks).
    fn tile(&self, tile: usize) -> &[u8] {
        let n = self.nb() * TILE * self.qtype.block_bytes();
        &self.data[tile * n..(tile + 1) * n]
    }

    /// Bytes the weights take (as the GGUF file, plus padding rows).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// The variant [`matmul`] runs: the widest one the CPU supports (capped by
/// `REKA_CPU_ISA`) whose self-check gives the scalar code's bits.
pub fn level() -> Isa {
    static LEVEL: OnceLock<Isa> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = crate::cpu::selected();
        for isa in Isa::ALL.into_iter().rev().filter(|i| *i <= cap && *i != Isa::Scalar && i.supported()) {
            if self_check(isa) {
                return isa;
            }
            eprintln!("reka-kernels: the {isa} quantized matmul failed its self-check; not using it");
        }
        Isa::Scalar
    })
}

/// Whether `isa` gives the scalar bits on a small matrix of each type.
fn self_check(isa: Isa) -> bool {
    let (rows, cols, t) = (40, 96, 6);
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let x: Vec<f32> = (0..t * cols).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
    TYPES.into_iter().all(|qt| {
        let data: Vec<u8> = (0..rows * cols / BLOCK * qt.block_bytes())
            .map(|i| {
                // Scales (the f16 fields) kept small and finite; quants random.
                let v = next() as u8;
                let at = i % qt.block_bytes();
                if at < if qt.has_min() { 4 } else { 2 } {
                    if at % 2 == 1 {
                        0x2c + (v & 3)
                    } else {
                        v
                    }
                } else {
                    v
                }
            })
            .collect();
        let Ok(m) = QMatrix::new(qt, rows, cols, data) else { return false };
        let tiled = Tiled::from_matrix(&m);
        matmul_with(isa, &tiled, &x, t) == matmul_with(Isa::Scalar, &tiled, &x, t)
    })
}

/// `y = x · wᵀ` for `x` `[t, cols]`, giving `[t, rows]`.
pub fn matmul(w: &Tiled, x: &[f32], t: usize) -> Vec<f32> {
    matmul_with(level(), w, x, t)
}

/// [`matmul`] with a given variant (it must be supported by the CPU).
pub fn matmul_with(isa: Isa, w: &Tiled, x: &[f32], t: usize) -> Vec<f32> {
    many_with(isa, &[w], x, t).pop().unwrap_or_default()
}

/// [`matmul`] of several weights that read the same activations (Q, K and V;
/// gate and up): the activations are quantized once and all weights' tiles are
/// shared out in one parallel pass, so the threads meet once, not per weight.
pub fn matmul_many(ws: &[&Tiled], x: &[f32], t: usize) -> Vec<Vec<f32>> {
    many_with(level(), ws, x, t)
}

fn many_with(isa: Isa, ws: &[&Tiled], x: &[f32], t: usize) -> Vec<Vec<f32>> {
    let Some(first) = ws.first() else { return Vec::new() };
    assert!(ws.iter().all(|w| w.cols == first.cols), "weights of one pass share their input width");
    assert!(x.len() >= t * first.cols, "activations shorter than t × cols");
    assert!(isa.supported(), "{isa} is not supported by this CPU");
    let acts: Vec<Q8Row> = x.chunks_exact(first.cols).take(t).map(quantize_q8).collect();
    tile_pass::run(ws, |w| w.rows, &acts, |w, tile, group, out| tile_product(isa, w, tile, group, out))
}

/// The 16 rows of one tile times 1 to 4 activation rows.
#[allow(unsafe_code)]
fn tile_product(isa: Isa, w: &Tiled, tile: usize, acts: &[Q8Row], out: &mut TileOut) {
    let data = w.tile(tile);
    let nb = w.nb();
    for a in acts {
        assert!(a.d.len() >= nb && a.s.len() >= nb && a.isum.len() >= nb && a.qs.len() >= nb * BLOCK);
    }
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Scalar {
        // SAFETY: `many_with` checked that the CPU supports `isa`; the tile
        // holds `nb` blocks of 16 rows and every activation row `nb` blocks
        // (asserted above); `out` holds 16 values per activation row.
        unsafe { crate::quant_tiles_x86::tile(isa, w.qtype, data.as_ptr(), nb, acts, out) };
        return;
    }
    let _ = isa;
    scalar_tile(w.qtype, data, nb, acts, out);
}

/// The scalar variant on the tile layout: for each row, [`crate::quant`]'s
/// reference order.
fn scalar_tile(qtype: QType, data: &[u8], nb: usize, acts: &[Q8Row], out: &mut TileOut) {
    let bb = qtype.block_bytes() * TILE;
    let q = quants_at(qtype);
    let f16_at = |b: &[u8], at: usize| half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32();
    for (c, a) in acts.iter().enumerate() {
        for (i, o) in out[c].iter_mut().enumerate() {
            let mut acc = 0f32;
            for b in 0..nb {
                let blk = &data[b * bb..(b + 1) * bb];
                let ya = &a.qs[b * BLOCK..(b + 1) * BLOCK];
                let mut sumi = 0i32;
                if qtype == QType::Q8_0 {
                    for k in 0..8 {
                        for j in 0..4 {
                            sumi += blk[q + 64 * k + 4 * i + j] as i8 as i32 * ya[4 * k + j] as i32;
                        }
                    }
                } else {
                    let five = matches!(qtype, QType::Q5_0 | QType::Q5_1);
                    for k in 0..4 {
                        let highs = if five { blk[highs_at(qtype) + 4 * i + k] as i32 } else { 0 };
                        for j in 0..4 {
                            let byte = blk[q + 64 * k + 4 * i + j];
                            let lo = (byte & 0x0F) as i32 | ((highs >> j) & 1) << 4;
                            let hi = (byte >> 4) as i32 | ((highs >> (4 + j)) & 1) << 4;
                            sumi += lo * ya[4 * k + j] as i32 + hi * ya[16 + 4 * k + j] as i32;
                        }
                    }
                    sumi -= qtype.offset() * a.isum[b];
                }
                acc = (sumi as f32).mul_add(f16_at(blk, 2 * i) * a.d[b], acc);
                if qtype.has_min() {
                    acc = f16_at(blk, 32 + 2 * i).mul_add(a.s[b], acc);
                }
            }
            *o = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::tests::{candle_matrix, noise};


    /// Every variant this CPU runs gives the bits of the scalar reference on
    /// the GGUF layout, for batch sizes on both sides of the 4-row passes and
    /// a row count that leaves a partial tile.
    #[test]
    fn every_variant_equals_the_scalar_reference_bit_for_bit() {
        let (rows, cols) = (150, 256);
        let skipped: Vec<Isa> = Isa::ALL.into_iter().filter(|i| !i.supported()).collect();
        if !skipped.is_empty() {
            eprintln!("quant_tiles: this CPU cannot run {skipped:?}; those variants are not tested here");
        }
        for qt in TYPES {
            let (m, _) = candle_matrix(qt, &noise(11, rows * cols), rows, cols);
            let tiled = Tiled::from_matrix(&m);
            for t in [1, 3, 4, 5, 9, 16] {
                let x = noise(12 + t as u64, t * cols);
                let want = crate::quant::matmul(&m, &x, t);
                for isa in crate::cpu::runnable() {
                    assert_eq!(matmul_with(isa, &tiled, &x, t), want, "{qt:?} {isa} t={t}");
                }
            }
        }
    }

    /// The largest quants against the largest activation quants of either
    /// sign: the 16-bit partial sums of every variant must not overflow.
    #[test]
    fn extreme_quants_do_not_overflow_the_partial_sums() {
        let (rows, cols, t) = (16, 64, 2);
        // Every activation the same magnitude quantizes to ±127 throughout.
        let x: Vec<f32> = (0..t * cols).map(|i| if i < cols { 1.0 } else { -1.0 }).collect();
        for qt in TYPES {
            let mut data = vec![0xFFu8; rows * cols / BLOCK * qt.block_bytes()];
            for blk in data.chunks_mut(qt.block_bytes()) {
                // d = 1.0 (and m = 1.0); Q8_0's quants 0x7F (127), the rest all ones.
                blk[..2].copy_from_slice(&[0x00, 0x3c]);
                if qt.has_min() {
                    blk[2..4].copy_from_slice(&[0x00, 0x3c]);
                }
                if qt == QType::Q8_0 {
                    blk[2..].fill(0x7F);
                }
            }
            let m = QMatrix::new(qt, rows, cols, data).expect("matrix");
            let want = crate::quant::matmul(&m, &x, t);
            let top = (if qt == QType::Q8_0 { 127 } else if matches!(qt, QType::Q5_0 | QType::Q5_1) { 31 } else { 15 } - qt.offset()) as f32;
            // Each weight is d·q (+ m), each activation 1 (then −1).
            let expect = (top + if qt.has_min() { 1.0 } else { 0.0 }) * cols as f32;
            assert!((want[0] - expect).abs() <= 1e-3 * expect && (want[rows] + expect).abs() <= 1e-3 * expect, "{qt:?}: {} {}", want[0], want[rows]);
            for isa in crate::cpu::runnable() {
                assert_eq!(matmul_with(isa, &Tiled::from_matrix(&m), &x, t), want, "{qt:?} {isa}");
            }
        }
    }

    /// A row's result does not depend on how many rows it is computed with.
    #[test]
    fn batched_rows_give_the_same_bits_as_single_rows() {
        let (rows, cols, t) = (130, 96, 7);
        for qt in TYPES {
            let (m, _) = candle_matrix(qt, &noise(3, rows * cols), rows, cols);
            let tiled = Tiled::from_matrix(&m);
            let x = noise(4, t * cols);
            let all = matmul(&tiled, &x, t);
            for j in 0..t {
                let one = matmul(&tiled, &x[j * cols..(j + 1) * cols], 1);
                assert_eq!(&all[j * rows..(j + 1) * rows], &one[..], "{qt:?} row {j}");
            }
        }
    }

    /// One pass over several weights gives each weight's own matmul, bit for bit.
    #[test]
    fn matmul_many_equals_one_matmul_per_weight() {
        let (cols, t) = (64, 5);
        let x = noise(5, t * cols);
        for qt in TYPES {
            let ms: Vec<Tiled> = [(70, 6), (33, 7), (128, 8)]
                .iter()
                .map(|&(rows, seed)| Tiled::from_matrix(&candle_matrix(qt, &noise(seed, rows * cols), rows, cols).0))
                .collect();
            let refs: Vec<&Tiled> = ms.iter().collect();
            let many = matmul_many(&refs, &x, t);
            for (m, y) in ms.iter().zip(&many) {
                assert_eq!(y, &matmul(m, &x, t), "{qt:?} {} rows", m.rows);
            }
        }
        assert!(matmul_many(&[], &x, t).is_empty());
    }

    #[test]
    fn the_level_in_use_passed_its_self_check() {
        let l = level();
        assert!(l <= crate::cpu::selected());
        assert!(self_check(l) || l == Isa::Scalar);
        eprintln!("quant_tiles: running {l} (CPU: {:?})", crate::cpu::extensions());
    }
}
