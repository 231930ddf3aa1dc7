//! Q4_K and Q6_K weights in 16-row tiles, as [`crate::quant_tiles`] does for
//! the 32-value block formats: one vector lane per weight row, so a 16-stream
//! decode step unpacks each weight block once for four activation rows and
//! takes no horizontal sums. The other K-quants keep GGUF's row layout
//! ([`crate::kquant`]).
//!
//! Numerics are [`crate::kquant`]'s (llama.cpp's): per 256-value block the
//! integer sums are exact, then [`crate::kquant_scalar::combine_k`]'s float
//! steps, so every variant gives the bits of the scalar reference on the GGUF
//! layout, whatever the batch.
//!
//! Layout, per tile of 16 rows and per 256-value block (a "tile block"). A
//! block is 4 segments of 64 values, X (values 0..32 of the segment) and Y
//! (32..64); segment `s`, group `k` (0..8) holds, per row, the 8 values at
//! positions `X[4k], X[4k+1], Y[4k], Y[4k+1]` (low nibbles of the row's 4
//! bytes) and `X[4k+2], X[4k+3], Y[4k+2], Y[4k+3]` (high nibbles). So one
//! `vpmaddubsw` gives X sums in the low 16 bits of each lane and Y sums in the
//! high 16, and one `vpmaddwd` by the lane's (X scale, Y scale) pair finishes
//! them. The activations are permuted the same way once per matmul
//! ([`KActs`]).
//! - Q4_K (2,368 bytes): `d` f16 ×16, `dmin` f16 ×16, then per segment the
//!   rows' (X, Y) scale pairs (u8, row `i` at `2i`), then the min pairs, then
//!   the quants: segment `s`, group `k`, row `i` at `512s + 64k + 4i`.
//! - Q6_K (3,360 bytes, as GGUF): `d` f16 ×16, then 8 scale pairs (i8; pair
//!   `2s + k/4` is the scales of the 16 values X and Y group `k` falls in), then
//!   per segment and pair of groups `(2g, 2g+1)` three runs of 64 bytes (row
//!   `i` at `4i`) holding four 6-bit quants per row and position: the low 6
//!   bits of the runs are group `2g`'s first four positions, its last four,
//!   and group `2g+1`'s first four; their top 2 bits (low, middle, high bits
//!   in runs 0, 1, 2) make group `2g+1`'s last four. Quants are kept as
//!   `q + 32` (0..63); the offset comes off through the activations' sums.

use crate::cpu::Isa;
use crate::kquant::{KMatrix, KType};
use crate::kquant_q8k::{quantize_q8k, Q8K, QK_K};
use crate::kquant_scalar as scalar;
pub use crate::tile_pass::TILE;
use crate::tile_pass::{self, TileOut};
use std::sync::OnceLock;

/// The formats kept in tiles.
pub const TYPES: [KType; 2] = [KType::Q4K, KType::Q6K];

/// Byte offsets within a tile block.
pub(crate) mod at {
    /// Q4_K: the rows' `d`, `dmin`, scale pairs, min pairs and quants.
    pub const Q4K_DMIN: usize = 32;
    pub const Q4K_SCALES: usize = 64;
    pub const Q4K_MINS: usize = 192;
    pub const Q4K_QS: usize = 320;
    pub const Q4K_BYTES: usize = 2368;
    /// Q6_K: the rows' scale pairs and quants (`d` at 0).
    pub const Q6K_SCALES: usize = 32;
    pub const Q6K_QS: usize = 288;
    pub const Q6K_BYTES: usize = 3360;
}

/// Position `pos` (0..8) of group `k`'s 8 values, as a value index within
/// its 64-value segment.
fn seg_value(k: usize, pos: usize) -> usize {
    let (half, j) = (pos / 4, pos % 4);
    32 * (j / 2) + 4 * k + 2 * half + j % 2
}

/// A K-quant matrix in tiles.
#[derive(Debug, Clone)]
pub struct KTiled {
    pub ktype: KType,
    pub rows: usize,
    pub cols: usize,
    data: Vec<u8>,
}

fn tile_block_bytes(kt: KType) -> usize {
    if kt == KType::Q4K {
        at::Q4K_BYTES
    } else {
        at::Q6K_BYTES
    }
}

impl KTiled {
    /// Repacks a GGUF-layout matrix; `None` for formats not kept in tiles.
    pub fn from_matrix(m: &KMatrix) -> Option<KTiled> {
        if !TYPES.contains(&m.ktype) {
            return None;
        }
        let (kt, nb) = (m.ktype, m.cols / QK_K);
        let tbb = tile_block_bytes(kt);
        let row_bytes = nb * kt.block_bytes();
        let data = tile_pass::repack(m.rows, nb * tbb, |r, i, tile| {
            for b in 0..nb {
                let blk = &m.bytes()[r * row_bytes + b * kt.block_bytes()..][..kt.block_bytes()];
                let out = &mut tile[b * tbb..][..tbb];
                if kt == KType::Q4K {
                    pack_q4k(blk, i, out);
                } else {
                    pack_q6k(blk, i, out);
                }
            }
        });
        Some(KTiled { ktype: kt, rows: m.rows, cols: m.cols, data })
    }

    /// Blocks per row.
    fn nb(&self) -> usize {
        self.cols / QK_K
    }

    fn tile(&self, tile: usize) -> &[u8] {
        let n = self.nb() * tile_block_bytes(self.ktype);
        &self.data[tile * n..(tile + 1) * n]
    }

    /// Bytes the weights take.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Row `i` of a Q4_K block into a tile block.
fn pack_q4k(blk: &[u8], i: usize, out: &mut [u8]) {
    let dec = scalar::decode_k(KType::Q4K, blk);
    out[2 * i..2 * i + 2].copy_from_slice(&blk[0..2]);
    out[at::Q4K_DMIN + 2 * i..][..2].copy_from_slice(&blk[2..4]);
    for s in 0..4 {
        // Sub-block 2s is X (scale index 4s), 2s + 1 is Y (4s + 2).
        for (j, g) in [4 * s, 4 * s + 2].into_iter().enumerate() {
            out[at::Q4K_SCALES + 32 * s + 2 * i + j] = dec.scale[g] as u8;
            out[at::Q4K_MINS + 32 * s + 2 * i + j] = dec.min[g] as u8;
        }
        for k in 0..8 {
            for j in 0..4 {
                let lo = dec.q[64 * s + seg_value(k, j)] as u8;
                let hi = dec.q[64 * s + seg_value(k, 4 + j)] as u8;
                out[at::Q4K_QS + 512 * s + 64 * k + 4 * i + j] = lo | (hi << 4);
            }
        }
    }
}

/// Row `i` of a Q6_K block into a tile block.
fn pack_q6k(blk: &[u8], i: usize, out: &mut [u8]) {
    let dec = scalar::decode_k(KType::Q6K, blk);
    out[2 * i..2 * i + 2].copy_from_slice(&blk[208..210]);
    let u = |s: usize, k: usize, pos: usize| (dec.q[64 * s + seg_value(k, pos)] as i32 + 32) as u8;
    for s in 0..4 {
        for hk in 0..2 {
            let p = 2 * s + hk;
            out[at::Q6K_SCALES + 32 * p + 2 * i] = dec.scale[4 * s + hk] as i8 as u8;
            out[at::Q6K_SCALES + 32 * p + 2 * i + 1] = dec.scale[4 * s + 2 + hk] as i8 as u8;
        }
        for g in 0..4 {
            let base = at::Q6K_QS + 768 * s + 192 * g;
            for j in 0..4 {
                let (k0, k1) = (2 * g, 2 * g + 1);
                let last = u(s, k1, 4 + j);
                for (run, low6) in [u(s, k0, j), u(s, k0, 4 + j), u(s, k1, j)].into_iter().enumerate() {
                    out[base + 64 * run + 4 * i + j] = low6 | (((last >> (2 * run)) & 3) << 6);
                }
            }
        }
    }
}

/// Row `i` of a tile block decoded as [`scalar::decode_k`] decodes the GGUF
/// block it came from.
fn unpack(kt: KType, tb: &[u8], i: usize) -> scalar::Decoded {
    let mut o = scalar::Decoded { q: [0; QK_K], scale: [0; 16], min: [0; 16] };
    for s in 0..4 {
        for k in 0..8 {
            for pos in 0..8 {
                let (j, high) = (pos % 4, pos >= 4);
                let v = 64 * s + seg_value(k, pos);
                o.q[v] = if kt == KType::Q4K {
                    let byte = tb[at::Q4K_QS + 512 * s + 64 * k + 4 * i + j];
                    (if high { byte >> 4 } else { byte & 0xF }) as i8
                } else {
                    let base = at::Q6K_QS + 768 * s + 192 * (k / 2) + 4 * i + j;
                    let u = match 2 * (k % 2) + high as usize {
                        3 => (0..3).map(|run| (tb[base + 64 * run] >> 6) << (2 * run)).sum::<u8>(),
                        run => tb[base + 64 * run] & 0x3F,
                    };
                    (u as i32 - 32) as i8
                };
            }
        }
        for g in 4 * s..4 * s + 4 {
            let (hk, y) = (g % 2, (g - 4 * s) / 2);
            if kt == KType::Q4K {
                o.scale[g] = tb[at::Q4K_SCALES + 32 * s + 2 * i + y] as i32;
                o.min[g] = tb[at::Q4K_MINS + 32 * s + 2 * i + y] as i32;
            } else {
                o.scale[g] = tb[at::Q6K_SCALES + 32 * (2 * s + hk) + 2 * i + y] as i8 as i32;
            }
        }
    }
    o
}

/// One activation row, quantized (Q8_K) and laid out for the tiles.
pub(crate) struct KActs {
    /// As quantized: the scalar variant reads these.
    pub(crate) q8: Q8K,
    /// The quants in the tiles' value order, per block.
    pub(crate) perm: Vec<i8>,
    /// Per block, 12 pairs of i16 as i32 (low half first): for Q4_K the
    /// (X, Y) sums of each segment's activation quants (4), then for Q6_K
    /// pair `2s + h`'s `bsums` (8: 16-value sums `4s + h` and `4s + 2 + h`).
    pub(crate) pairs: Vec<i32>,
}

/// Pairs per block in [`KActs::pairs`]; Q6_K's start at [`Q6K_PAIRS`].
pub(crate) const PAIRS: usize = 12;
pub(crate) const Q6K_PAIRS: usize = 4;

impl KActs {
    fn new(x: &[f32]) -> KActs {
        let q8 = quantize_q8k(x);
        let nb = x.len() / QK_K;
        let mut perm = vec![0i8; nb * QK_K];
        let mut pairs = vec![0i32; nb * PAIRS];
        let pair = |a: i32, b: i32| (a as u16 as u32 | ((b as u16 as u32) << 16)) as i32;
        for b in 0..nb {
            let (qs, bs) = (&q8.qs[b * QK_K..][..QK_K], &q8.bsums[16 * b..][..16]);
            for s in 0..4 {
                for k in 0..8 {
                    for pos in 0..8 {
                        perm[b * QK_K + 64 * s + 8 * k + pos] = qs[64 * s + seg_value(k, pos)];
                    }
                }
                let sum = |g: usize| bs[g] as i32 + bs[g + 1] as i32;
                pairs[b * PAIRS + s] = pair(sum(4 * s), sum(4 * s + 2));
                for h in 0..2 {
                    pairs[b * PAIRS + Q6K_PAIRS + 2 * s + h] = pair(bs[4 * s + h] as i32, bs[4 * s + 2 + h] as i32);
                }
            }
        }
        KActs { q8, perm, pairs }
    }
}

/// The variant [`matmul`] runs (chosen and self-checked once, as
/// [`crate::kquant::level`]: the levels above AVX2 run the AVX2 code).
pub fn level() -> Isa {
    static LEVEL: OnceLock<Isa> = OnceLock::new();
    *LEVEL.get_or_init(|| crate::kquant::checked_level("kquant_tiles", self_check))
}

/// Whether `isa` gives the GGUF-layout reference's bits on random blocks of
/// each tiled format (a partial tile, batches of 1 to 5 rows).
fn self_check(isa: Isa) -> bool {
    let (rows, t) = (20, 5);
    TYPES.into_iter().enumerate().all(|(i, kt)| {
        let cols = 2 * QK_K;
        let Ok(w) = KMatrix::new(kt, rows, cols, crate::kquant::random_blocks(kt, rows * 2, 31 + i as u64)) else {
            return false;
        };
        let Some(tiled) = KTiled::from_matrix(&w) else { return false };
        let x = crate::noise(37 + i as u64, t * cols);
        let want = crate::kquant::matmul_with(Isa::Scalar, &w, &x, t);
        many_with(isa, &[&tiled], &x, t)[0].iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits())
    })
}

/// `y = x · wᵀ` for `x` `[t, cols]`, giving `[t, rows]`.
pub fn matmul(w: &KTiled, x: &[f32], t: usize) -> Vec<f32> {
    many_with(level(), &[w], x, t).pop().unwrap_or_default()
}

/// [`matmul`] by the variant for level `isa` (it must run on this CPU).
pub fn matmul_with(isa: Isa, w: &KTiled, x: &[f32], t: usize) -> Vec<f32> {
    many_with(crate::kquant::variant(isa), &[w], x, t).pop().unwrap_or_default()
}

/// [`matmul`] of several weights that read the same activations: quantized
/// once, and all weights' tiles shared out in one parallel pass.
pub fn matmul_many(ws: &[&KTiled], x: &[f32], t: usize) -> Vec<Vec<f32>> {
    many_with(level(), ws, x, t)
}

fn many_with(isa: Isa, ws: &[&KTiled], x: &[f32], t: usize) -> Vec<Vec<f32>> {
    let Some(first) = ws.first() else { return Vec::new() };
    assert!(ws.iter().all(|w| w.cols == first.cols), "weights of one pass share their input width");
    assert!(x.len() >= t * first.cols, "activations shorter than t × cols");
    assert!(isa.supported(), "{isa} is not supported by this CPU");
    let acts: Vec<KActs> = x.chunks_exact(first.cols).take(t).map(KActs::new).collect();
    tile_pass::run(ws, |w| w.rows, &acts, |w, tile, group, out| tile_product(isa, w, tile, group, out))
}

/// The 16 rows of one tile times 1 to 4 activation rows.
#[allow(unsafe_code)]
fn tile_product(isa: Isa, w: &KTiled, tile: usize, acts: &[KActs], out: &mut TileOut) {
    let (data, nb) = (w.tile(tile), w.nb());
    for a in acts {
        assert!(a.q8.d.len() >= nb && a.perm.len() >= nb * QK_K && a.pairs.len() >= nb * PAIRS);
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 {
        // SAFETY: `many_with` checked that the CPU runs AVX2; the tile holds
        // `nb` tile blocks and every activation row `nb` blocks (asserted).
        unsafe { crate::kquant_tiles_x86::tile(w.ktype, data.as_ptr(), nb, acts, out) };
        return;
    }
    let _ = isa;
    let tbb = tile_block_bytes(w.ktype);
    for (c, a) in acts.iter().enumerate() {
        for (i, o) in out[c].iter_mut().enumerate() {
            let mut acc = 0f32;
            for b in 0..nb {
                let tb = &data[b * tbb..(b + 1) * tbb];
                let (sumi, summs) = scalar::block_sums(&unpack(w.ktype, tb, i), &a.q8.qs[b * QK_K..(b + 1) * QK_K]);
                let f16_at = |at: usize| half::f16::from_le_bytes([tb[at], tb[at + 1]]).to_f32();
                let dmin = if w.ktype == KType::Q4K { f16_at(at::Q4K_DMIN + 2 * i) } else { 0.0 };
                acc = scalar::combine_k(w.ktype, (f16_at(2 * i), dmin), a.q8.d[b], sumi, summs, acc);
            }
            *o = acc;
        }
    }
}
