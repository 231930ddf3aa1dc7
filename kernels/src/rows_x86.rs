//! AVX2 versions of the decoder's per-value row ops, each lane doing the
//! scalar code's operations in its order, so the bits are the same:
//! [`crate::expf::exp`] (hence SwiGLU) and ggml's Q8 activation quantization
//! ([`crate::quant::quantize_q8`]: `amax / 127`, round half away from zero,
//! scales and block sums rounded to f16).
#![allow(unsafe_code)]

use std::arch::x86_64::*;

/// Round half away from zero, exactly as `f32::round`: the integer part plus
/// one step away from zero when the (exact) fraction is at least a half.
#[inline(always)]
unsafe fn round_away(v: __m256) -> __m256 {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let frac = _mm256_sub_ps(v, t);
    let sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0));
    let abs_frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0), frac);
    let up = _mm256_cmp_ps::<_CMP_GE_OQ>(abs_frac, _mm256_set1_ps(0.5));
    let step = _mm256_and_ps(up, _mm256_or_ps(sign, _mm256_set1_ps(1.0)));
    _mm256_add_ps(t, step)
}

/// `2^k` for k in [-126, 127], built from its bits.
#[inline(always)]
unsafe fn pow2(k: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k, _mm256_set1_epi32(127))))
}

/// [`crate::expf::exp`] on eight lanes.
#[inline(always)]
unsafe fn exp8(x: __m256) -> __m256 {
    use crate::expf::{LN2_HI, LN2_LO, LOG2E, MAX, MIN, P};
    let n = round_away(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)));
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x));
    let mut p = _mm256_set1_ps(P[0]);
    for c in &P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0));
    // Lanes out of range hold garbage here; they are replaced below.
    let k = _mm256_cvttps_epi32(n);
    // k / 2, rounded toward zero as Rust's integer division.
    let a = _mm256_srai_epi32::<1>(_mm256_add_epi32(k, _mm256_srli_epi32::<31>(k)));
    let v = _mm256_mul_ps(_mm256_mul_ps(y, pow2(a)), pow2(_mm256_sub_epi32(k, a)));
    let v = _mm256_blendv_ps(v, _mm256_set1_ps(f32::INFINITY), _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(MAX)));
    let v = _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(MIN)));
    _mm256_blendv_ps(v, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// `gate[i] = gate[i] / (1 + exp(-gate[i])) · up[i]` for whole groups of 8;
/// returns how many values it did.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) -> usize {
    let n = gate.len().min(up.len()) / 8 * 8;
    let one = _mm256_set1_ps(1.0);
    for i in (0..n).step_by(8) {
        let g = _mm256_loadu_ps(gate.as_ptr().add(i));
        let u = _mm256_loadu_ps(up.as_ptr().add(i));
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        let v = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u);
        _mm256_storeu_ps(gate.as_mut_ptr().add(i), v);
    }
    n
}

/// Every 32-value block of `x` quantized as [`crate::quant::quantize_q8`]
/// does it: the quants into `q`, and per block `d` and `d · Σq` (both rounded
/// to f16) and `Σq` pushed onto `d`, `s` and `sum`. One call per row, so the
/// blocks' work overlaps; the maximum and the sum stay in registers.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `q` holds `x.len()` values.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_row(x: &[f32], q: &mut [i8], d: &mut Vec<f32>, s: &mut Vec<f32>, sum: &mut Vec<i32>) {
    assert!(q.len() >= x.len());
    for (b, xs) in x.chunks_exact(32).enumerate() {
        let (db, sb, ib) = quantize_block(xs, &mut q[32 * b..32 * (b + 1)]);
        d.push(db);
        s.push(sb);
        sum.push(ib);
    }
}

/// One 32-value block of [`quantize_row`]: returns `(d, s, Σq)`.
#[inline(always)]
unsafe fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, f32, i32) {
    assert!(x.len() >= 32 && q.len() >= 32);
    let abs = _mm256_set1_ps(-0.0);
    let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
    let mut m = _mm256_andnot_ps(abs, v[0]);
    for vi in &v[1..] {
        m = _mm256_max_ps(m, _mm256_andnot_ps(abs, *vi));
    }
    // The largest lane, with NaN lanes counted as 0: what folding the
    // lanes with `f32::max` from 0 gives (all lanes are ≥ +0).
    let m = _mm256_and_ps(m, _mm256_cmp_ps::<_CMP_ORD_Q>(m, m));
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2)));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let idv = _mm256_set1_ps(id);
    let qi: [__m256i; 4] = std::array::from_fn(|i| _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[i], idv))));
    // Sum of the 32 integers (exact in any order).
    let s8 = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
    let s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256::<1>(s8));
    let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
    // Pack to bytes: packs work within 128-bit halves, so put the order back.
    let p01 = _mm256_packs_epi32(qi[0], qi[1]);
    let p23 = _mm256_packs_epi32(qi[2], qi[3]);
    let p = _mm256_packs_epi16(p01, p23);
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, p);
    let h = |f: f32| _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(_mm_set_ss(f))));
    (h(d), h(sum as f32 * d), sum)
}

/// `s[i] = exp(s[i] - max)` for whole groups of 8 (the sum is left to the
/// caller, in its order); returns how many values it did.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_minus(s: &mut [f32], max: f32) -> usize {
    let n = s.len() / 8 * 8;
    let m = _mm256_set1_ps(max);
    for i in (0..n).step_by(8) {
        let p = s.as_mut_ptr().add(i);
        _mm256_storeu_ps(p, exp8(_mm256_sub_ps(_mm256_loadu_ps(p), m)));
    }
    n
}

/// Rounds whole groups of 8 values to f16 precision (nearest, ties to even,
/// as `half::f16::from_f32`); returns how many values it did.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn round_f16(x: &mut [f32]) -> usize {
    let n = x.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        let p = x.as_mut_ptr().add(i);
        let h = _mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(_mm256_loadu_ps(p));
        _mm256_storeu_ps(p, _mm256_cvtph_ps(h));
    }
    n
}

/// [`crate::attention`]'s `dot` on eight lanes: lane `i` sums `a[i + 8c] ·
/// b[i + 8c]` over `c` in order (multiply, then add), then the lanes are
/// added in order, as the scalar code does. `a.len()` must be a multiple of 8.
///
/// # Safety
/// The CPU must support AVX2; `b` holds at least `a.len()` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    debug_assert!(a.len().is_multiple_of(8) && b.len() >= a.len());
    let mut acc = _mm256_setzero_ps();
    for c in (0..a.len()).step_by(8) {
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(a.as_ptr().add(c)), _mm256_loadu_ps(b.as_ptr().add(c))));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    let tail: f32 = [0f32; 0].iter().sum();
    lanes.iter().sum::<f32>() + tail
}

/// [`dot_lanes`] of `a` with eight rows of `b` at once (row `j` starts at
/// `j · stride`), into `out[j]`: each row's sum takes exactly the operations
/// of [`dot_lanes`] in its order (so the same bits), but the eight
/// independent chains overlap instead of waiting on one another.
///
/// # Safety
/// The CPU must support AVX2; `a.len()` is a multiple of 8 and `b` holds
/// `7 · stride + a.len()` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_lanes8(a: &[f32], b: &[f32], stride: usize, out: &mut [f32; 8]) {
    debug_assert!(a.len().is_multiple_of(8) && b.len() >= 7 * stride + a.len());
    let mut acc = [_mm256_setzero_ps(); 8];
    for c in (0..a.len()).step_by(8) {
        let x = _mm256_loadu_ps(a.as_ptr().add(c));
        for (j, r) in acc.iter_mut().enumerate() {
            *r = _mm256_add_ps(*r, _mm256_mul_ps(x, _mm256_loadu_ps(b.as_ptr().add(j * stride + c))));
        }
    }
    // Transpose, so that vector `i` holds lane `i` of every row, then add
    // the lanes in order from the empty sum's value, as `dot_lanes` does.
    let t0 = _mm256_unpacklo_ps(acc[0], acc[1]);
    let t1 = _mm256_unpackhi_ps(acc[0], acc[1]);
    let t2 = _mm256_unpacklo_ps(acc[2], acc[3]);
    let t3 = _mm256_unpackhi_ps(acc[2], acc[3]);
    let t4 = _mm256_unpacklo_ps(acc[4], acc[5]);
    let t5 = _mm256_unpackhi_ps(acc[4], acc[5]);
    let t6 = _mm256_unpacklo_ps(acc[6], acc[7]);
    let t7 = _mm256_unpackhi_ps(acc[6], acc[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let lanes = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    let zero = _mm256_set1_ps([0f32; 0].iter().sum());
    let mut sum = zero;
    for l in lanes {
        sum = _mm256_add_ps(sum, l);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(sum, zero));
}

/// `o[d] += w[p] · v[p · stride + d]` for every `p` in order, `o` held in
/// registers 64 values at a time. `o.len()` must be a multiple of 8.
///
/// # Safety
/// The CPU must support AVX2; `v` holds `w.len()` rows of `stride` values
/// (the last one at least `o.len()`).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn weigh_rows(o: &mut [f32], w: &[f32], v: &[f32], stride: usize) {
    debug_assert!(o.len().is_multiple_of(8));
    for (base, chunk) in o.chunks_mut(64).enumerate() {
        let n = chunk.len() / 8;
        let mut acc = [_mm256_setzero_ps(); 8];
        for (c, a) in acc.iter_mut().take(n).enumerate() {
            *a = _mm256_loadu_ps(chunk.as_ptr().add(8 * c));
        }
        for (p, &wp) in w.iter().enumerate() {
            let wv = _mm256_set1_ps(wp);
            let row = v.as_ptr().add(p * stride + base * 64);
            for (c, a) in acc.iter_mut().take(n).enumerate() {
                *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, _mm256_loadu_ps(row.add(8 * c))));
            }
        }
        for (c, a) in acc.iter().take(n).enumerate() {
            _mm256_storeu_ps(chunk.as_mut_ptr().add(8 * c), *a);
        }
    }
}

/// `log Σ exp(l)` over `logits`: the maximum, then `exp(l - max)` on eight
/// f32 lanes ([`crate::expf`]'s steps, within 2 ulp) summed in f64 per lane.
/// Returns `(max, Σ)`; the caller takes `max + ln Σ`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_sum(logits: &[f32]) -> (f32, f64) {
    let n = logits.len() / 8 * 8;
    let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
    for i in (0..n).step_by(8) {
        m = _mm256_max_ps(m, _mm256_loadu_ps(logits.as_ptr().add(i)));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    let max = lanes.iter().chain(&logits[n..]).copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return (max, 1.0);
    }
    let mv = _mm256_set1_ps(max);
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    for i in (0..n).step_by(8) {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(logits.as_ptr().add(i)), mv));
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
    }
    let mut d = [0f64; 4];
    _mm256_storeu_pd(d.as_mut_ptr(), _mm256_add_pd(lo, hi));
    let tail: f64 = logits[n..].iter().map(|&l| crate::expf::exp(l - max) as f64).sum();
    (max, d.iter().sum::<f64>() + tail)
}
