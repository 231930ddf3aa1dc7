//! AVX2 variant of [`crate::kquant`]: one weight row against up to four
//! activation rows at a time, each weight block unpacked once for all of them.
//!
//! A K block (256 values) is taken as 8 chunks of 32 values; chunk `k` holds
//! values `32k..32k+32` as unsigned quants in one register (the signed formats'
//! offsets are taken off afterwards through the activations' `bsums`), and the
//! 16 i16 products of `vpmaddubsw` are multiplied by their sub-block scales
//! with `vpmaddwd`, so the block's integer sum stays exact. Then the block's
//! float steps are [`combine_k`], the scalar reference's own: every result has
//! the reference's bits.
//!
//! Integer ranges: quants are at most 63 (Q6_K) and activation quants within
//! ±127, so one `vpmaddubsw` lane is at most 16,002 (no saturation); scales
//! times those fit i32 with room to spare (|sumi| < 2²⁹ per block).
#![allow(unsafe_code)]

use crate::kquant::KType;
use crate::kquant_q8k::{Q8K, QK_K};
use crate::kquant_scalar::{combine_k, d_offsets, has_mins, scale_min_k4, scales_q3k};
use std::arch::x86_64::*;

/// How far ahead of the block in use the weights are prefetched, in bytes (a
/// hint: the address may lie past the matrix, hence `wrapping_add`).
const PREFETCH: usize = 1024;

/// Proof that the CPU runs AVX2, FMA and F16C: made only by [`Avx2::new`].
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token, if this CPU has the features.
    pub(crate) fn new() -> Option<Avx2> {
        crate::cpu::Isa::Avx2.supported().then_some(Avx2(()))
    }

    /// `out[c] = row · acts[c]` for every activation row. Panics unless
    /// `row` holds whole blocks of `kt` and each activation row as many Q8_K
    /// blocks.
    pub(crate) fn dots_k(self, kt: KType, row: &[u8], acts: &[Q8K], out: &mut [f32]) {
        assert!(row.len().is_multiple_of(kt.block_bytes()));
        let nb = row.len() / kt.block_bytes();
        assert!(acts.iter().all(|a| a.qs.len() >= nb * QK_K && a.bsums.len() >= nb * 16 && a.d.len() >= nb));
        assert!(out.len() >= acts.len());
        for (a, o) in acts.chunks(4).zip(out.chunks_mut(4)) {
            // SAFETY: the token proves the CPU features; the sizes were checked
            // above, and the kernels read only blocks `0..nb` of `row` and of
            // each activation row.
            unsafe {
                match a.len() {
                    1 => by_cols_k::<1>(kt, row, a, o),
                    2 => by_cols_k::<2>(kt, row, a, o),
                    3 => by_cols_k::<3>(kt, row, a, o),
                    _ => by_cols_k::<4>(kt, row, a, o),
                }
            }
        }
    }
}

unsafe fn by_cols_k<const C: usize>(kt: KType, row: &[u8], a: &[Q8K], o: &mut [f32]) {
    match kt {
        KType::Q2K => q2k::<C>(row, a, o),
        KType::Q3K => q3k::<C>(row, a, o),
        KType::Q4K => q45k::<C, false>(row, a, o),
        KType::Q5K => q45k::<C, true>(row, a, o),
        KType::Q6K => q6k::<C>(row, a, o),
    }
}

/// Adds `madd(sc, maddubs(q, a_c[off..off+32]))` into each row's accumulator.
#[inline(always)]
unsafe fn mac<const C: usize>(acc: &mut [__m256i; C], q: __m256i, sc: __m256i, qa: &[*const i8; C], off: usize) {
    for c in 0..C {
        let av = _mm256_loadu_si256(qa[c].add(off) as *const __m256i);
        acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, av)));
    }
}

/// A block's `d` and `dmin` (0 without) by F16C: the same values as
/// the reference's [`crate::kquant_scalar::block_scales`] (the conversion is exact).
#[inline(always)]
unsafe fn scales_f16c(kt: KType, p: *const u8) -> (f32, f32) {
    let (d_at, m_at) = d_offsets(kt);
    let d = (p.add(d_at) as *const u16).read_unaligned() as i32;
    let m = if has_mins(kt) { (p.add(m_at) as *const u16).read_unaligned() as i32 } else { 0 };
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(d | (m << 16)));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_shuffle_ps::<0b01>(v, v)))
}

/// Sum of the 8 i32 lanes.
#[inline(always)]
unsafe fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The lane sums of two vectors at once.
#[inline(always)]
unsafe fn hsum2(a: __m256i, b: __m256i) -> (i32, i32) {
    let h = _mm256_hadd_epi32(a, b);
    let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
    let s = _mm_hadd_epi32(s, s);
    (_mm_cvtsi128_si32(s), _mm_extract_epi32::<1>(s))
}

/// Right shift of each 16-bit lane by `n` (masked afterwards to whole bytes).
#[inline(always)]
unsafe fn shr16(v: __m256i, n: i32) -> __m256i {
    _mm256_srl_epi16(v, _mm_cvtsi32_si128(n))
}

/// From 16 i16 scales (one per 16 values), those of chunk `k`: scale `2k` in
/// the low 8 lanes (values 0..16 of the chunk), `2k + 1` in the high 8.
#[inline(always)]
unsafe fn pair_scales(s16: __m256i, k: i32) -> __m256i {
    let both = _mm256_permutevar8x32_epi32(s16, _mm256_set1_epi32(k));
    let pick = _mm256_setr_epi8(
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
        2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
    );
    _mm256_shuffle_epi8(both, pick)
}

#[inline(always)]
unsafe fn ptrs<const C: usize>(a: &[Q8K]) -> [*const i8; C] {
    std::array::from_fn(|c| a[c].qs.as_ptr())
}

#[inline(always)]
unsafe fn bsums(a: &Q8K, b: usize) -> __m256i {
    _mm256_loadu_si256(a.bsums.as_ptr().add(16 * b) as *const __m256i)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2k<const C: usize>(row: &[u8], a: &[Q8K], o: &mut [f32]) {
    let kt = KType::Q2K;
    let qa = ptrs::<C>(a);
    let mut acc_f = [0f32; C];
    let three = _mm256_set1_epi8(3);
    for (b, blk) in row.chunks_exact(kt.block_bytes()).enumerate() {
        let p = blk.as_ptr();
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
        let dm = scales_f16c(kt, p);
        let sc = _mm_loadu_si128(p as *const __m128i);
        let s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc, _mm_set1_epi8(0xF)));
        let m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc), _mm_set1_epi8(0xF)));
        let mut acc = [_mm256_setzero_si256(); C];
        for n in 0..2 {
            let qv = _mm256_loadu_si256(p.add(16 + 32 * n) as *const __m256i);
            for j in 0..4 {
                let k = 4 * n + j;
                let q = _mm256_and_si256(shr16(qv, 2 * j as i32), three);
                mac(&mut acc, q, pair_scales(s16, k as i32), &qa, b * QK_K + 32 * k);
            }
        }
        for c in 0..C {
            let (sumi, summs) = hsum2(acc[c], _mm256_madd_epi16(m16, bsums(&a[c], b)));
            acc_f[c] = combine_k(kt, dm, a[c].d[b], sumi, summs, acc_f[c]);
        }
    }
    o[..C].copy_from_slice(&acc_f);
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3k<const C: usize>(row: &[u8], a: &[Q8K], o: &mut [f32]) {
    let kt = KType::Q3K;
    let qa = ptrs::<C>(a);
    let mut acc_f = [0f32; C];
    let (three, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
    for (b, blk) in row.chunks_exact(kt.block_bytes()).enumerate() {
        let p = blk.as_ptr();
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
        let dm = scales_f16c(kt, p);
        let sc = scales_q3k(&blk[96..108]);
        let s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
        let hm = _mm256_loadu_si256(p as *const __m256i);
        let mut acc = [_mm256_setzero_si256(); C];
        for n in 0..2 {
            let qv = _mm256_loadu_si256(p.add(32 + 32 * n) as *const __m256i);
            for j in 0..4 {
                let k = 4 * n + j;
                let low = _mm256_and_si256(shr16(qv, 2 * j as i32), three);
                let high = _mm256_slli_epi16::<2>(_mm256_and_si256(shr16(hm, k as i32), one));
                let q = _mm256_or_si256(low, high);
                mac(&mut acc, q, pair_scales(s16, k as i32), &qa, b * QK_K + 32 * k);
            }
        }
        for c in 0..C {
            // The quants were taken as q + 4: take 4·scale·Σa off.
            let off = _mm256_slli_epi32::<2>(_mm256_madd_epi16(s16, bsums(&a[c], b)));
            let sumi = hsum(_mm256_sub_epi32(acc[c], off));
            acc_f[c] = combine_k(kt, dm, a[c].d[b], sumi, 0, acc_f[c]);
        }
    }
    o[..C].copy_from_slice(&acc_f);
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q45k<const C: usize, const FIVE: bool>(row: &[u8], a: &[Q8K], o: &mut [f32]) {
    let kt = if FIVE { KType::Q5K } else { KType::Q4K };
    let qs_at = if FIVE { 48 } else { 16 };
    let qa = ptrs::<C>(a);
    let mut acc_f = [0f32; C];
    let (low4, one) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(1));
    for (b, blk) in row.chunks_exact(kt.block_bytes()).enumerate() {
        let p = blk.as_ptr();
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
        let dm = scales_f16c(kt, p);
        let mut sc = [0i16; 8];
        let mut mins = [0i16; 16];
        for j in 0..8 {
            let (s, m) = scale_min_k4(j, &blk[4..16]);
            sc[j] = s as i16;
            mins[2 * j] = m as i16;
            mins[2 * j + 1] = m as i16;
        }
        let m16 = _mm256_loadu_si256(mins.as_ptr() as *const __m256i);
        let qh = if FIVE { _mm256_loadu_si256(p.add(16) as *const __m256i) } else { _mm256_setzero_si256() };
        let mut acc = [_mm256_setzero_si256(); C];
        for pair in 0..4 {
            let qv = _mm256_loadu_si256(p.add(qs_at + 32 * pair) as *const __m256i);
            for half in 0..2 {
                let k = 2 * pair + half;
                let mut q = _mm256_and_si256(shr16(qv, 4 * half as i32), low4);
                if FIVE {
                    let h = _mm256_and_si256(shr16(qh, k as i32), one);
                    q = _mm256_or_si256(q, _mm256_slli_epi16::<4>(h));
                }
                mac(&mut acc, q, _mm256_set1_epi16(sc[k]), &qa, b * QK_K + 32 * k);
            }
        }
        for c in 0..C {
            let (sumi, summs) = hsum2(acc[c], _mm256_madd_epi16(m16, bsums(&a[c], b)));
            acc_f[c] = combine_k(kt, dm, a[c].d[b], sumi, summs, acc_f[c]);
        }
    }
    o[..C].copy_from_slice(&acc_f);
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k<const C: usize>(row: &[u8], a: &[Q8K], o: &mut [f32]) {
    let kt = KType::Q6K;
    let qa = ptrs::<C>(a);
    let mut acc_f = [0f32; C];
    let (low4, two) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(0x30));
    for (b, blk) in row.chunks_exact(kt.block_bytes()).enumerate() {
        let p = blk.as_ptr();
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
        let dm = scales_f16c(kt, p);
        let s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192) as *const __m128i));
        let mut acc = [_mm256_setzero_si256(); C];
        for n in 0..2 {
            let l0 = _mm256_loadu_si256(p.add(64 * n) as *const __m256i);
            let l1 = _mm256_loadu_si256(p.add(64 * n + 32) as *const __m256i);
            let h = _mm256_loadu_si256(p.add(128 + 32 * n) as *const __m256i);
            let quants = [
                _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16::<4>(h), two)),
                _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16::<2>(h), two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(l0), low4), _mm256_and_si256(h, two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(l1), low4), _mm256_and_si256(_mm256_srli_epi16::<2>(h), two)),
            ];
            for (g, &q) in quants.iter().enumerate() {
                let k = 4 * n + g;
                mac(&mut acc, q, pair_scales(s16, k as i32), &qa, b * QK_K + 32 * k);
            }
        }
        for c in 0..C {
            // The quants were taken as q + 32: take 32·scale·Σa off.
            let off = _mm256_slli_epi32::<5>(_mm256_madd_epi16(s16, bsums(&a[c], b)));
            let sumi = hsum(_mm256_sub_epi32(acc[c], off));
            acc_f[c] = combine_k(kt, dm, a[c].d[b], sumi, 0, acc_f[c]);
        }
    }
    o[..C].copy_from_slice(&acc_f);
}
