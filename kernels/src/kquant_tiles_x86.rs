//! AVX2 variant of [`crate::kquant_tiles`]: 8 weight rows per register (the
//! tile in two halves), up to four activation rows per pass. Each lane keeps
//! one row's exact integer block sums, then the reference's float steps
//! ([`crate::kquant_scalar::combine_k`], lane-wise), so every result has the
//! scalar reference's bits.
//!
//! Integer ranges: a Q4_K quant is 0..=15 and an activation quant within ±127,
//! so 16 products per 16-bit half-lane (4 groups) stay within 30,480 before
//! `vpmaddwd` widens them by the 6-bit scales. A Q6_K quant (plus 32) is
//! 0..=63: 4 products (one group) stay within 32,004.
#![allow(unsafe_code)]
// Lane loops index several arrays (sums, accumulators, activation rows) by
// the same row number.
#![allow(clippy::needless_range_loop)]

use crate::kquant::KType;
use crate::kquant_q8k::QK_K;
use crate::kquant_tiles::{at, KActs, PAIRS, Q6K_PAIRS};
use crate::tile_pass::TileOut;
use std::arch::x86_64::*;

/// How far ahead of the block in use the weights are prefetched, in bytes.
const PREFETCH: usize = 2048;

/// The activation rows' fields as raw pointers, hoisted out of the loops.
struct Acts<const C: usize> {
    d: [*const f32; C],
    perm: [*const i8; C],
    pairs: [*const i32; C],
}

impl<const C: usize> Acts<C> {
    fn new(a: &[KActs]) -> Self {
        Acts {
            d: std::array::from_fn(|j| a[j].q8.d.as_ptr()),
            perm: std::array::from_fn(|j| a[j].perm.as_ptr()),
            pairs: std::array::from_fn(|j| a[j].pairs.as_ptr()),
        }
    }

    /// Four permuted activation quants of row `c` at `at`, broadcast.
    #[inline(always)]
    unsafe fn four(&self, c: usize, at: usize) -> __m256i {
        _mm256_set1_epi32((self.perm[c].add(at) as *const i32).read_unaligned())
    }

    /// Pair `p` of block `b` of row `c`, broadcast.
    #[inline(always)]
    unsafe fn pair(&self, c: usize, b: usize, p: usize) -> __m256i {
        _mm256_set1_epi32(*self.pairs[c].add(b * PAIRS + p))
    }
}

/// One tile (16 rows, `nb` tile blocks at `w`) times 1 to 4 activation rows,
/// into `out[c][row]`.
///
/// # Safety
/// The CPU must run AVX2, FMA and F16C; `w` must point at `nb` tile blocks of
/// `kt` (Q4_K or Q6_K); each activation row must hold `nb` blocks.
pub(crate) unsafe fn tile(kt: KType, w: *const u8, nb: usize, acts: &[KActs], out: &mut TileOut) {
    macro_rules! cols {
        ($c:literal) => {{
            let a = Acts::<$c>::new(acts);
            if kt == KType::Q4K {
                q4k::<$c>(w, nb, &a, out)
            } else {
                q6k::<$c>(w, nb, &a, out)
            }
        }};
    }
    match acts.len() {
        1 => cols!(1),
        2 => cols!(2),
        3 => cols!(3),
        _ => cols!(4),
    }
}

/// `acc = fma(sumi, d_a·d, acc)`, then with mins `fma(−summs, d_a·dmin, acc)`,
/// lane-wise: `combine_k`'s steps.
#[inline(always)]
unsafe fn combine(acc: __m256, sumi: __m256i, da: f32, d: __m256, mins: Option<(__m256i, __m256)>) -> __m256 {
    let da = _mm256_set1_ps(da);
    let acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(da, d), acc);
    match mins {
        Some((summs, dmin)) => _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summs), _mm256_mul_ps(da, dmin), acc),
        None => acc,
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k<const C: usize>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut TileOut) {
    let mask = _mm256_set1_epi8(0x0F);
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); C];
        for b in 0..nb {
            let blk = w.add(b * at::Q4K_BYTES);
            let mut sumi = [_mm256_setzero_si256(); C];
            let mut summs = [_mm256_setzero_si256(); C];
            for s in 0..4 {
                let q = blk.add(at::Q4K_QS + 512 * s + 32 * h);
                if h == 0 {
                    _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(PREFETCH) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(PREFETCH + 256) as *const i8);
                }
                let sc = _mm256_cvtepu8_epi16(_mm_loadu_si128(blk.add(at::Q4K_SCALES + 32 * s + 16 * h) as *const __m128i));
                for quarter in 0..2 {
                    let mut s16 = [_mm256_setzero_si256(); C];
                    for k in 4 * quarter..4 * quarter + 4 {
                        let wv = _mm256_loadu_si256(q.add(64 * k) as *const __m256i);
                        let lo = _mm256_and_si256(wv, mask);
                        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(wv), mask);
                        let at = b * QK_K + 64 * s + 8 * k;
                        for c in 0..C {
                            let two = _mm256_add_epi16(_mm256_maddubs_epi16(lo, a.four(c, at)), _mm256_maddubs_epi16(hi, a.four(c, at + 4)));
                            s16[c] = _mm256_add_epi16(s16[c], two);
                        }
                    }
                    for c in 0..C {
                        sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(s16[c], sc));
                    }
                }
                let mn = _mm256_cvtepu8_epi16(_mm_loadu_si128(blk.add(at::Q4K_MINS + 32 * s + 16 * h) as *const __m128i));
                for c in 0..C {
                    summs[c] = _mm256_add_epi32(summs[c], _mm256_madd_epi16(mn, a.pair(c, b, s)));
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(16 * h) as *const __m128i));
            let dmin = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(at::Q4K_DMIN + 16 * h) as *const __m128i));
            for c in 0..C {
                acc[c] = combine(acc[c], sumi[c], *a.d[c].add(b), d, Some((summs[c], dmin)));
            }
        }
        for c in 0..C {
            _mm256_storeu_ps(out[c].as_mut_ptr().add(8 * h), acc[c]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k<const C: usize>(w: *const u8, nb: usize, a: &Acts<C>, out: &mut TileOut) {
    let (low6, top2) = (_mm256_set1_epi8(0x3F), _mm256_set1_epi8(0xC0u8 as i8));
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); C];
        for b in 0..nb {
            let blk = w.add(b * at::Q6K_BYTES);
            let mut sumi = [_mm256_setzero_si256(); C];
            let mut offs = [_mm256_setzero_si256(); C];
            for s in 0..4 {
                for half_seg in 0..2 {
                    let p = 2 * s + half_seg;
                    let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(at::Q6K_SCALES + 32 * p + 16 * h) as *const __m128i));
                    for c in 0..C {
                        offs[c] = _mm256_add_epi32(offs[c], _mm256_madd_epi16(sc, a.pair(c, b, Q6K_PAIRS + p)));
                    }
                    for g in 2 * half_seg..2 * half_seg + 2 {
                        let base = blk.add(at::Q6K_QS + 768 * s + 192 * g + 32 * h);
                        if h == 0 {
                            _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(PREFETCH) as *const i8);
                            _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(PREFETCH + 128) as *const i8);
                        }
                        let r0 = _mm256_loadu_si256(base as *const __m256i);
                        let r1 = _mm256_loadu_si256(base.add(64) as *const __m256i);
                        let r2 = _mm256_loadu_si256(base.add(128) as *const __m256i);
                        // The fourth quant from the three runs' top bits
                        // (masked before the 16-bit shifts, so no bits cross bytes).
                        let last = _mm256_or_si256(
                            _mm256_or_si256(_mm256_srli_epi16::<6>(_mm256_and_si256(r0, top2)), _mm256_srli_epi16::<4>(_mm256_and_si256(r1, top2))),
                            _mm256_srli_epi16::<2>(_mm256_and_si256(r2, top2)),
                        );
                        let v = [_mm256_and_si256(r0, low6), _mm256_and_si256(r1, low6), _mm256_and_si256(r2, low6), last];
                        for (e, k) in [2 * g, 2 * g + 1].into_iter().enumerate() {
                            let at = b * QK_K + 64 * s + 8 * k;
                            for c in 0..C {
                                let two = _mm256_add_epi16(
                                    _mm256_maddubs_epi16(v[2 * e], a.four(c, at)),
                                    _mm256_maddubs_epi16(v[2 * e + 1], a.four(c, at + 4)),
                                );
                                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(two, sc));
                            }
                        }
                    }
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(16 * h) as *const __m128i));
            for c in 0..C {
                // The quants were taken as q + 32: take 32·Σ scale·bsum off.
                let sumi = _mm256_sub_epi32(sumi[c], _mm256_slli_epi32::<5>(offs[c]));
                acc[c] = combine(acc[c], sumi, *a.d[c].add(b), d, None);
            }
        }
        for c in 0..C {
            _mm256_storeu_ps(out[c].as_mut_ptr().add(8 * h), acc[c]);
        }
    }
}
