//! AVX2 block dot products for [`crate::quant`], following the structure of
//! ggml's x86 kernels (nibble unpacking, `maddubs` pair sums, one FMA per block
//! into eight float lanes, the same final horizontal sum), so that results stay
//! within float rounding of llama.cpp's on the same machine.
#![allow(unsafe_code)]

use crate::quant::{QType, Q8Row, BLOCK};
use std::arch::x86_64::*;

#[inline(always)]
unsafe fn f16_load(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// ggml's `hsum_float_8`.
#[inline(always)]
unsafe fn hsum(x: __m256) -> f32 {
    let mut r = _mm256_extractf128_ps(x, 1);
    r = _mm_add_ps(r, _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// 16 bytes of nibbles → 32 bytes: low nibbles first, then high nibbles.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let q = _mm_loadu_si128(p as *const __m128i);
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(q, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    _mm256_set_m128i(hi, lo)
}

/// Σ u8·i8 over 32 bytes as eight f32 lanes.
#[inline(always)]
unsafe fn sum_u8_i8(u: __m256i, s: __m256i) -> __m256 {
    let p16 = _mm256_maddubs_epi16(u, s);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
}

/// Σ i8·i8 over 32 bytes as eight f32 lanes (ggml's `mul_sum_i8_pairs_float`).
#[inline(always)]
unsafe fn sum_i8_i8(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    sum_u8_i8(ax, sy)
}

/// Dot product of one weight row (GGUF blocks) with quantized activations.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `w` must hold `a`'s block count of
/// `qtype` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_row(qtype: QType, w: &[u8], a: &Q8Row) -> f32 {
    let nb = a.d.len();
    let wp = w.as_ptr();
    let qa = a.qs.as_ptr();
    let mut acc = _mm256_setzero_ps();
    match qtype {
        QType::Q4_1 => {
            let mut summs = 0f32;
            for b in 0..nb {
                let blk = wp.add(b * 20);
                let d = _mm256_set1_ps(f16_load(blk) * a.d[b]);
                summs += f16_load(blk.add(2)) * a.s[b];
                let y = _mm256_loadu_si256(qa.add(b * BLOCK) as *const __m256i);
                acc = _mm256_fmadd_ps(d, sum_u8_i8(nibbles(blk.add(4)), y), acc);
            }
            hsum(acc) + summs
        }
        QType::Q4_0 => {
            let off = _mm256_set1_epi8(8);
            for b in 0..nb {
                let blk = wp.add(b * 18);
                let d = _mm256_set1_ps(f16_load(blk) * a.d[b]);
                let x = _mm256_sub_epi8(nibbles(blk.add(2)), off);
                let y = _mm256_loadu_si256(qa.add(b * BLOCK) as *const __m256i);
                acc = _mm256_fmadd_ps(d, sum_i8_i8(x, y), acc);
            }
            hsum(acc)
        }
        QType::Q8_0 => {
            for b in 0..nb {
                let blk = wp.add(b * 34);
                let d = _mm256_set1_ps(f16_load(blk) * a.d[b]);
                let x = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let y = _mm256_loadu_si256(qa.add(b * BLOCK) as *const __m256i);
                acc = _mm256_fmadd_ps(d, sum_i8_i8(x, y), acc);
            }
            hsum(acc)
        }
    }
}

/// How far ahead of the block in use weights are prefetched, in bytes.
const PREFETCH: usize = 2048;

/// [`dot_row`] for `N` activation rows at once: each weight block is loaded and
/// unpacked once and used for all of them. Every activation row gets exactly
/// the operations, in the same order, that [`dot_row`] would give it, so the
/// results are the same bits whatever `N` is (batching never changes outputs).
///
/// # Safety
/// As [`dot_row`], for every row of `a`; `out` holds `N` values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_row_n<const N: usize>(qtype: QType, w: &[u8], a: [&Q8Row; N], out: &mut [f32]) {
    let nb = a[0].d.len();
    for r in &a {
        assert!(r.d.len() >= nb && r.s.len() >= nb && r.qs.len() >= nb * BLOCK, "activation rows differ in length");
    }
    assert!(out.len() >= N);
    let wp = w.as_ptr();
    // Raw pointers hoisted out of the block loop: with the rows' Vecs behind
    // references the compiler would reload them and check bounds every block.
    let dp: [*const f32; N] = std::array::from_fn(|j| a[j].d.as_ptr());
    let sp: [*const f32; N] = std::array::from_fn(|j| a[j].s.as_ptr());
    let qp: [*const i8; N] = std::array::from_fn(|j| a[j].qs.as_ptr());
    let mut acc = [_mm256_setzero_ps(); N];
    let mut summs = [0f32; N];
    match qtype {
        QType::Q4_1 => {
            for b in 0..nb {
                let blk = wp.add(b * 20);
                // The weights stream from memory once per token: ask for them
                // 2 KiB ahead (measured: 10-20% faster decoding on 2 cores).
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH) as *const i8);
                let (dw, mw) = (f16_load(blk), f16_load(blk.add(2)));
                let x = nibbles(blk.add(4));
                for j in 0..N {
                    let d = _mm256_set1_ps(dw * *dp[j].add(b));
                    summs[j] += mw * *sp[j].add(b);
                    let y = _mm256_loadu_si256(qp[j].add(b * BLOCK) as *const __m256i);
                    acc[j] = _mm256_fmadd_ps(d, sum_u8_i8(x, y), acc[j]);
                }
            }
        }
        QType::Q4_0 | QType::Q8_0 => {
            let (size, off) = if qtype == QType::Q4_0 { (18, 8) } else { (34, 0) };
            for b in 0..nb {
                let blk = wp.add(b * size);
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH) as *const i8);
                let dw = f16_load(blk);
                let x = if qtype == QType::Q4_0 {
                    _mm256_sub_epi8(nibbles(blk.add(2)), _mm256_set1_epi8(off))
                } else {
                    _mm256_loadu_si256(blk.add(2) as *const __m256i)
                };
                let ax = _mm256_sign_epi8(x, x);
                for j in 0..N {
                    let d = _mm256_set1_ps(dw * *dp[j].add(b));
                    let y = _mm256_loadu_si256(qp[j].add(b * BLOCK) as *const __m256i);
                    acc[j] = _mm256_fmadd_ps(d, sum_u8_i8(ax, _mm256_sign_epi8(y, x)), acc[j]);
                }
            }
        }
    }
    for j in 0..N {
        out[j] = if qtype == QType::Q4_1 { hsum(acc[j]) + summs[j] } else { hsum(acc[j]) };
    }
}
