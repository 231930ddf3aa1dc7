//! x86 variants of [`crate::quant_tiles`] (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0):
//! AVX2, AVX-VNNI, AVX-512 (F/BW/VL)
//! and AVX-512 VNNI. One body per register width, generic over the block type,
//! the number of activation rows and whether `vpdpbusd` replaces the
//! `vpmaddubsw` + `vpmaddwd` pair; each lane is one weight row and follows the
//! scalar reference's order (exact integer block sum, then one FMA per block).
//!
//! Integer ranges: a Q4 quant is 0..=15 and an activation quant -127..=127, so
//! one `vpmaddubsw` lane is at most 3,810 in size and the 8 of a block at most
//! 30,480: they are summed in 16 bits before widening. A Q5 quant is 0..=31, so
//! its sums are widened after every two groups of 8 values (at most 31,496). Q8_0's products are
//! taken as |w| · ±a (at most 32,512 per pair) and widened at once.
#![allow(unsafe_code)]
// Lane loops index several arrays (sums, accumulators, activation rows) by
// the same row number.
#![allow(clippy::needless_range_loop)]

use crate::cpu::Isa;
use crate::quant::{QType, Q8Row, BLOCK};
use crate::quant_tiles::TILE;
use std::arch::x86_64::*;

const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q8_0: u8 = 2;
const Q5_0: u8 = 3;
const Q5_1: u8 = 4;

const fn has_min(qt: u8) -> bool {
    qt == Q4_1 || qt == Q5_1
}

const fn five(qt: u8) -> bool {
    qt == Q5_0 || qt == Q5_1
}

/// How far ahead of the block in use the weights are prefetched, in bytes.
const PREFETCH: usize = 2048;

const fn tile_block_bytes(qt: u8) -> usize {
    TILE * match qt {
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        Q5_1 => 24,
        _ => 34,
    }
}

/// As `quant_tiles::highs_at` / `quants_at`.
const fn highs_at(qt: u8) -> usize {
    if has_min(qt) {
        64
    } else {
        32
    }
}

const fn quants_at(qt: u8) -> usize {
    highs_at(qt) + if five(qt) { 64 } else { 0 }
}

/// `vpshufb` indices that copy byte `k` of every 32-bit lane into all four of
/// its bytes (the fifth bits of one group of values).
#[inline(always)]
unsafe fn spread_idx(k: usize) -> __m128i {
    let k = k as i8;
    _mm_setr_epi8(k, k, k, k, 4 + k, 4 + k, 4 + k, 4 + k, 8 + k, 8 + k, 8 + k, 8 + k, 12 + k, 12 + k, 12 + k, 12 + k)
}

/// The activation rows' fields as raw pointers, hoisted out of the loops.
struct Acts<const C: usize> {
    d: [*const f32; C],
    s: [*const f32; C],
    isum: [*const i32; C],
    qs: [*const i8; C],
}

impl<const C: usize> Acts<C> {
    fn new(a: &[Q8Row]) -> Self {
        Acts {
            d: std::array::from_fn(|j| a[j].d.as_ptr()),
            s: std::array::from_fn(|j| a[j].s.as_ptr()),
            isum: std::array::from_fn(|j| a[j].isum.as_ptr()),
            qs: std::array::from_fn(|j| a[j].qs.as_ptr()),
        }
    }

    /// Four activation quants of row `c`, block `b`, from value `at`, as one i32.
    #[inline(always)]
    unsafe fn four(&self, c: usize, b: usize, at: usize) -> i32 {
        (self.qs[c].add(b * BLOCK + at) as *const i32).read_unaligned()
    }
}

/// One tile (16 rows, `nb` blocks at `w`) times 1 to 4 activation rows, into
/// `out[c][row]`.
///
/// # Safety
/// The CPU must support `isa` (not `Scalar`); `w` must point at `nb` tile
/// blocks of `qtype`; each activation row must hold `nb` blocks.
pub(crate) unsafe fn tile(isa: Isa, qtype: QType, w: *const u8, nb: usize, acts: &[Q8Row], out: &mut [[f32; TILE]; 4]) {
    match acts.len() {
        1 => by_cols::<1>(isa, qtype, w, nb, acts, out),
        2 => by_cols::<2>(isa, qtype, w, nb, acts, out),
        3 => by_cols::<3>(isa, qtype, w, nb, acts, out),
        _ => by_cols::<4>(isa, qtype, w, nb, acts, out),
    }
}

unsafe fn by_cols<const C: usize>(isa: Isa, qtype: QType, w: *const u8, nb: usize, acts: &[Q8Row], out: &mut [[f32; TILE]; 4]) {
    let a = Acts::<C>::new(acts);
    macro_rules! pick {
        ($f:ident) => {
            match qtype {
                QType::Q4_0 => $f::<Q4_0, C>(w, nb, &a, out),
                QType::Q4_1 => $f::<Q4_1, C>(w, nb, &a, out),
                QType::Q8_0 => $f::<Q8_0, C>(w, nb, &a, out),
                QType::Q5_0 => $f::<Q5_0, C>(w, nb, &a, out),
                QType::Q5_1 => $f::<Q5_1, C>(w, nb, &a, out),
            }
        };
    }
    match isa {
        Isa::Avx2 => pick!(avx2),
        Isa::AvxVnni => pick!(avx_vnni),
        Isa::Avx512 => pick!(avx512),
        Isa::Avx512Vnni => pick!(avx512_vnni),
        Isa::Scalar => unreachable!("the scalar variant is not an x86 kernel"),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2<const QT: u8, const C: usize>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut [[f32; TILE]; 4]) {
    body256::<QT, C, false>(w, nb, a, out)
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn avx_vnni<const QT: u8, const C: usize>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut [[f32; TILE]; 4]) {
    body256::<QT, C, true>(w, nb, a, out)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn avx512<const QT: u8, const C: usize>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut [[f32; TILE]; 4]) {
    body512::<QT, C, false>(w, nb, a, out)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512_vnni<const QT: u8, const C: usize>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut [[f32; TILE]; 4]) {
    body512::<QT, C, true>(w, nb, a, out)
}

/// 8 rows per register: the tile in two halves.
#[inline(always)]
unsafe fn body256<const QT: u8, const C: usize, const VNNI: bool>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut [[f32; TILE]; 4]) {
    let bb = tile_block_bytes(QT);
    let mask = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); C];
        for b in 0..nb {
            let blk = w.add(b * bb);
            if h == 0 {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH) as *const i8);
            }
            let q = blk.add(quants_at(QT) + 32 * h);
            let mut s = [_mm256_setzero_si256(); C];
            if QT == Q8_0 {
                for k in 0..8 {
                    let wv = _mm256_loadu_si256(q.add(64 * k) as *const __m256i);
                    let aw = _mm256_sign_epi8(wv, wv);
                    for c in 0..C {
                        let ys = _mm256_sign_epi8(_mm256_set1_epi32(a.four(c, b, 4 * k)), wv);
                        s[c] = if VNNI {
                            _mm256_dpbusd_avx_epi32(s[c], aw, ys)
                        } else {
                            _mm256_add_epi32(s[c], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, ys), ones))
                        };
                    }
                }
            } else {
                let highs = if five(QT) { _mm256_loadu_si256(blk.add(highs_at(QT) + 32 * h) as *const __m256i) } else { mask };
                let (bit_lo, bit_hi) = (_mm256_set1_epi32(0x0804_0201), _mm256_set1_epi32(0x8040_2010u32 as i32));
                let mut s5 = [_mm256_setzero_si256(); C];
                for k in 0..4 {
                    let wv = _mm256_loadu_si256(q.add(64 * k) as *const __m256i);
                    let mut lo = _mm256_and_si256(wv, mask);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(wv), mask);
                    if five(QT) {
                        // The fifth bits: byte k of each row's four, spread to
                        // its four values, tested, and added as 16.
                        let idx = spread_idx(k);
                        let spread = _mm256_shuffle_epi8(highs, _mm256_set_m128i(idx, idx));
                        let sixteen = _mm256_set1_epi8(0x10);
                        let set_lo = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_lo), bit_lo);
                        let set_hi = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_hi), bit_hi);
                        lo = _mm256_or_si256(lo, _mm256_and_si256(set_lo, sixteen));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(set_hi, sixteen));
                    }
                    for c in 0..C {
                        let ya = _mm256_set1_epi32(a.four(c, b, 4 * k));
                        let yb = _mm256_set1_epi32(a.four(c, b, 16 + 4 * k));
                        if VNNI {
                            s[c] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(s[c], lo, ya), hi, yb);
                            continue;
                        }
                        let two = _mm256_add_epi16(_mm256_maddubs_epi16(lo, ya), _mm256_maddubs_epi16(hi, yb));
                        if !five(QT) {
                            s[c] = _mm256_add_epi16(s[c], two);
                        } else if k % 2 == 0 {
                            // 5-bit products overflow 16 bits over a block:
                            // widen every two groups.
                            s5[c] = two;
                        } else {
                            s[c] = _mm256_add_epi32(s[c], _mm256_madd_epi16(_mm256_add_epi16(s5[c], two), ones));
                        }
                    }
                }
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(16 * h) as *const __m128i));
            for c in 0..C {
                let mut si = if VNNI || QT == Q8_0 || five(QT) { s[c] } else { _mm256_madd_epi16(s[c], ones) };
                if QT == Q4_0 || QT == Q5_0 {
                    let off = if QT == Q4_0 { 8 } else { 16 };
                    si = _mm256_sub_epi32(si, _mm256_set1_epi32(off * *a.isum[c].add(b)));
                }
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d[c].add(b)));
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), scale, acc[c]);
                if has_min(QT) {
                    let mw = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(32 + 16 * h) as *const __m128i));
                    acc[c] = _mm256_fmadd_ps(mw, _mm256_set1_ps(*a.s[c].add(b)), acc[c]);
                }
            }
        }
        for c in 0..C {
            _mm256_storeu_ps(out[c].as_mut_ptr().add(8 * h), acc[c]);
        }
    }
}

/// 16 rows per register: the whole tile at once.
#[inline(always)]
unsafe fn body512<const QT: u8, const C: usize, const VNNI: bool>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut [[f32; TILE]; 4]) {
    let bb = tile_block_bytes(QT);
    let mask = _mm512_set1_epi8(0x0F);
    let ones = _mm512_set1_epi16(1);
    let zero = _mm512_setzero_si512();
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        let blk = w.add(b * bb);
        _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH) as *const i8);
        let q = blk.add(quants_at(QT));
        let mut s = [_mm512_setzero_si512(); C];
        if QT == Q8_0 {
            for k in 0..8 {
                let wv = _mm512_loadu_si512(q.add(64 * k) as *const __m512i);
                let aw = _mm512_abs_epi8(wv);
                let neg = _mm512_movepi8_mask(wv);
                for c in 0..C {
                    let y = _mm512_set1_epi32(a.four(c, b, 4 * k));
                    let ys = _mm512_mask_sub_epi8(y, neg, zero, y);
                    s[c] = if VNNI {
                        _mm512_dpbusd_epi32(s[c], aw, ys)
                    } else {
                        _mm512_add_epi32(s[c], _mm512_madd_epi16(_mm512_maddubs_epi16(aw, ys), ones))
                    };
                }
            }
        } else {
            let highs = if five(QT) { _mm512_loadu_si512(blk.add(highs_at(QT)) as *const __m512i) } else { mask };
            let (bit_lo, bit_hi) = (_mm512_set1_epi32(0x0804_0201), _mm512_set1_epi32(0x8040_2010u32 as i32));
            let sixteen = _mm512_set1_epi8(0x10);
            for k in 0..4 {
                let wv = _mm512_loadu_si512(q.add(64 * k) as *const __m512i);
                let mut lo = _mm512_and_si512(wv, mask);
                let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(wv), mask);
                if five(QT) {
                    let spread = _mm512_shuffle_epi8(highs, _mm512_broadcast_i32x4(spread_idx(k)));
                    lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(spread, bit_lo), lo, sixteen);
                    hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(spread, bit_hi), hi, sixteen);
                }
                for c in 0..C {
                    let ya = _mm512_set1_epi32(a.four(c, b, 4 * k));
                    let yb = _mm512_set1_epi32(a.four(c, b, 16 + 4 * k));
                    s[c] = if VNNI {
                        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(s[c], lo, ya), hi, yb)
                    } else {
                        let two = _mm512_add_epi16(_mm512_maddubs_epi16(lo, ya), _mm512_maddubs_epi16(hi, yb));
                        if five(QT) {
                            _mm512_add_epi32(s[c], _mm512_madd_epi16(two, ones))
                        } else {
                            _mm512_add_epi16(s[c], two)
                        }
                    };
                }
            }
        }
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(blk as *const __m256i));
        for c in 0..C {
            let mut si = if VNNI || QT == Q8_0 || five(QT) { s[c] } else { _mm512_madd_epi16(s[c], ones) };
            if QT == Q4_0 || QT == Q5_0 {
                let off = if QT == Q4_0 { 8 } else { 16 };
                si = _mm512_sub_epi32(si, _mm512_set1_epi32(off * *a.isum[c].add(b)));
            }
            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d[c].add(b)));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(si), scale, acc[c]);
            if has_min(QT) {
                let mw = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(32) as *const __m256i));
                acc[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*a.s[c].add(b)), acc[c]);
            }
        }
    }
    for c in 0..C {
        _mm512_storeu_ps(out[c].as_mut_ptr(), acc[c]);
    }
}
