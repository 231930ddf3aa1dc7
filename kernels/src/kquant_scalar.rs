//! The scalar reference of [`crate::kquant`]: each block decoded to its integer
//! quants, scales and mins exactly as ggml's `dequantize_row_*` reads them, the
//! dequantization in ggml's float order, and one weight row · one activation
//! row with exact integer block sums followed by the float steps of
//! [`combine_k`], which the SIMD variants share (so they give these bits).
//!
//! Block layouts (ggml-common.h), bytes:
//! - Q2_K (84): `scales[16]` (low nibble scale, high nibble min), `qs[64]`, `d`, `dmin`.
//! - Q3_K (110): `hmask[32]`, `qs[64]`, `scales[12]` (16 × 6 bits), `d`.
//! - Q4_K (144): `d`, `dmin`, `scales[12]` (8 scales + 8 mins, 6 bits), `qs[128]`.
//! - Q5_K (176): `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]`.
//! - Q6_K (210): `ql[128]`, `qh[64]`, `scales[16]` (i8), `d`.

use crate::kquant::KType;
use crate::kquant_q8k::{Q8K, QK_K};
use half::f16;

#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Byte offsets of a K block's `d` and `dmin` (`dmin` unused without mins).
#[inline(always)]
pub(crate) const fn d_offsets(kt: KType) -> (usize, usize) {
    match kt {
        KType::Q2K => (80, 82),
        KType::Q3K => (108, 0),
        KType::Q4K | KType::Q5K => (0, 2),
        KType::Q6K => (208, 0),
    }
}

/// Whether the format subtracts a per-sub-block minimum (`x = d·s·q − dmin·m`).
#[inline(always)]
pub(crate) const fn has_mins(kt: KType) -> bool {
    matches!(kt, KType::Q2K | KType::Q4K | KType::Q5K)
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (of 8)
/// of a Q4_K / Q5_K block's 12 scale bytes.
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// The 16 signed 6-bit scales of a Q3_K block (already minus 32).
#[inline(always)]
pub(crate) fn scales_q3k(s: &[u8]) -> [i8; 16] {
    std::array::from_fn(|k| {
        let low = if k < 8 { s[k] & 0xF } else { s[k - 8] >> 4 };
        let high = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        (low | (high << 4)) as i8 - 32
    })
}

/// A K block's integer content: quant `q[v]`, and per 16 values the scale and
/// the min, so that `x[v] = d·scale[v/16]·q[v] − dmin·min[v/16]`.
pub(crate) struct Decoded {
    pub q: [i8; QK_K],
    pub scale: [i32; 16],
    pub min: [i32; 16],
}

/// Decodes one K block.
pub(crate) fn decode_k(kt: KType, blk: &[u8]) -> Decoded {
    let mut o = Decoded { q: [0; QK_K], scale: [0; 16], min: [0; 16] };
    match kt {
        KType::Q2K => {
            let (sc, qs) = (&blk[0..16], &blk[16..80]);
            for v in 0..QK_K {
                let (n, j, l) = (v / 128, (v % 128) / 32, v % 32);
                o.q[v] = ((qs[32 * n + l] >> (2 * j)) & 3) as i8;
            }
            for (g, &b) in sc.iter().enumerate() {
                o.scale[g] = (b & 0xF) as i32;
                o.min[g] = (b >> 4) as i32;
            }
        }
        KType::Q3K => {
            let (hm, qs) = (&blk[0..32], &blk[32..96]);
            for v in 0..QK_K {
                let (n, j, l) = (v / 128, (v % 128) / 32, v % 32);
                let low = ((qs[32 * n + l] >> (2 * j)) & 3) as i8;
                let high = hm[l] & (1 << (4 * n + j)) != 0;
                o.q[v] = if high { low } else { low - 4 };
            }
            for (s, v) in o.scale.iter_mut().zip(scales_q3k(&blk[96..108])) {
                *s = v as i32;
            }
        }
        KType::Q4K | KType::Q5K => {
            let five = kt == KType::Q5K;
            let qs = &blk[if five { 48 } else { 16 }..];
            for v in 0..QK_K {
                let (p, hi, l) = (v / 64, (v % 64) / 32, v % 32);
                let byte = qs[32 * p + l];
                let mut q = if hi == 1 { byte >> 4 } else { byte & 0xF };
                if five && blk[16 + l] & (1 << (v / 32)) != 0 {
                    q += 16;
                }
                o.q[v] = q as i8;
            }
            for g in 0..16 {
                let (s, m) = scale_min_k4(g / 2, &blk[4..16]);
                o.scale[g] = s as i32;
                o.min[g] = m as i32;
            }
        }
        KType::Q6K => {
            let (ql, qh, sc) = (&blk[0..128], &blk[128..192], &blk[192..208]);
            for v in 0..QK_K {
                let (n, g, l) = (v / 128, (v % 128) / 32, v % 32);
                let lo = ql[64 * n + 32 * (g % 2) + l];
                let lo = if g < 2 { lo & 0xF } else { lo >> 4 };
                let hi = (qh[32 * n + l] >> (2 * g)) & 3;
                o.q[v] = (lo | (hi << 4)) as i8 - 32;
            }
            for (s, &b) in o.scale.iter_mut().zip(sc) {
                *s = b as i8 as i32;
            }
        }
    }
    o
}

/// Dequantizes one block of `kt` into `out` (256 values), in ggml's float
/// order: `(d·scale)·q − dmin·min` (two roundings; ggml's `dl * q - ml`), and
/// `(d·scale)·q` for Q3_K / Q6_K.
pub(crate) fn dequantize_block(kt: KType, blk: &[u8], out: &mut [f32]) {
    let (d, dmin) = block_scales(kt, blk);
    let dec = decode_k(kt, blk);
    if has_mins(kt) {
        for (v, o) in out.iter_mut().enumerate().take(QK_K) {
            let dl = d * dec.scale[v / 16] as f32;
            let ml = dmin * dec.min[v / 16] as f32;
            *o = dl * dec.q[v] as f32 - ml;
        }
    } else {
        for (v, o) in out.iter_mut().enumerate().take(QK_K) {
            *o = d * dec.scale[v / 16] as f32 * dec.q[v] as f32;
        }
    }
}

/// A block's f16 `d` and its `dmin` (0 when it has none), as f32.
#[inline(always)]
pub(crate) fn block_scales(kt: KType, blk: &[u8]) -> (f32, f32) {
    let (d_at, m_at) = d_offsets(kt);
    (f16_at(blk, d_at), if has_mins(kt) { f16_at(blk, m_at) } else { 0.0 })
}

/// The float steps of one K block, shared by every variant: with the block's
/// `(d, dmin)` ([`block_scales`]) and exact `sumi = Σ scale·q·a` and
/// `summs = Σ min·a`, `acc = fma(sumi, d_a·d, acc)` then (with mins)
/// `acc = fma(−summs, d_a·dmin, acc)`.
#[inline(always)]
pub(crate) fn combine_k(kt: KType, (d, dmin): (f32, f32), da: f32, sumi: i32, summs: i32, acc: f32) -> f32 {
    let acc = (sumi as f32).mul_add(da * d, acc);
    if has_mins(kt) {
        (-(summs as f32)).mul_add(da * dmin, acc)
    } else {
        acc
    }
}

/// One K-quant weight row · one Q8_K activation row.
pub(crate) fn dot_k(kt: KType, row: &[u8], a: &Q8K) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in row.chunks_exact(kt.block_bytes()).enumerate() {
        let (sumi, summs) = block_sums(&decode_k(kt, blk), &a.qs[b * QK_K..(b + 1) * QK_K]);
        acc = combine_k(kt, block_scales(kt, blk), a.d[b], sumi, summs, acc);
    }
    acc
}

/// A decoded block's exact integer sums against one block of activation
/// quants: `sumi = Σ scale·q·a` and `summs = Σ min·a`.
pub(crate) fn block_sums(dec: &Decoded, qa: &[i8]) -> (i32, i32) {
    let (mut sumi, mut summs) = (0i32, 0i32);
    for g in 0..16 {
        let (mut s, mut sa) = (0i32, 0i32);
        for (&q, &x) in dec.q[16 * g..16 * (g + 1)].iter().zip(&qa[16 * g..16 * (g + 1)]) {
            s += q as i32 * x as i32;
            sa += x as i32;
        }
        sumi += dec.scale[g] * s;
        summs += dec.min[g] * sa;
    }
    (sumi, summs)
}
