//! Causal grouped-query attention and rotary embeddings over plain f32 rows, for
//! a KV cache that grows in place: keys and values are stored position-major
//! (`[position, kv_heads · head_dim]`), so appending a step is a copy of that
//! step's rows and nothing else. Work is split over (query row, head) pairs.

use crate::RopeStyle;
use half::f16;
use rayon::prelude::*;

/// The attention heads of a decoder layer and how their scores are taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Factor on the scores (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Round the softmax output to f16 before it weighs the values (llama.cpp).
    pub round_probs: bool,
}

impl Heads {
    fn q_width(self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_width(self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// Rounds to f16 precision, as llama.cpp's f16 KV cache and attention do
/// (eight lanes at a time where the CPU has AVX2 and F16C: the conversion
/// instruction `half` itself uses per value there, so the same bits).
pub fn round_f16(x: &mut [f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the selected level covers AVX2 and F16C.
        #[allow(unsafe_code)]
        {
            done = unsafe { crate::rows_x86::round_f16(x) };
        }
    }
    round_f16_scalar(&mut x[done..]);
}

/// [`round_f16`] one value at a time: the reference.
fn round_f16_scalar(x: &mut [f32]) {
    for v in x {
        *v = f16::from_f32(*v).to_f32();
    }
}

/// Rotates `x` `[rows, n · head_dim]` in place; row `r` is at position `pos[r]`.
/// `cos`/`sin` are `[positions, head_dim / 2]`. Only the first `rot` dims of
/// each head rotate (partial rotary, `rot = head_dim` for all): pairs
/// `(2j, 2j + 1)` (interleaved) or `(j, j + rot / 2)` (halves), `j < rot / 2`,
/// with the tables' first `rot / 2` columns; the other dims pass through.
pub fn rope_rows(x: &mut [f32], head_dim: usize, rot: usize, pos: &[usize], cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = head_dim / 2;
    let rh = rot.min(head_dim) / 2;
    let width = x.len() / pos.len().max(1);
    for (row, &p) in x.chunks_exact_mut(width).zip(pos) {
        let (c, s) = (&cos[p * half..(p + 1) * half], &sin[p * half..(p + 1) * half]);
        for head in row.chunks_exact_mut(head_dim) {
            for j in 0..rh {
                let (a, b) = match style {
                    RopeStyle::Interleaved => (2 * j, 2 * j + 1),
                    RopeStyle::Halves => (j, j + rh),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c[j] - x1 * s[j];
                head[b] = x0 * s[j] + x1 * c[j];
            }
        }
    }
}

/// Attention of `t` query rows `q` `[t, heads · head_dim]` at positions
/// `start..start + t` over the cached `k`, `v` `[start + t, kv_heads · head_dim]`
/// (the queries' own rows included); each query sees positions up to its own.
/// Returns `[t, heads · head_dim]`. The (row, head) pairs are shared out over
/// the thread pool.
pub fn attention(h: Heads, q: &[f32], t: usize, k: &[f32], v: &[f32], start: usize) -> Vec<f32> {
    attention_with(h, q, t, k, v, start, true)
}

/// [`attention`], with the (row, head) pairs shared out over the thread pool
/// or, without `parallel`, taken in turn on this thread (for a caller that
/// already runs many sessions' attention in parallel: a decode row's heads
/// are too little work to hand out again). The same bits either way.
#[allow(unsafe_code)]
pub fn attention_with(h: Heads, q: &[f32], t: usize, k: &[f32], v: &[f32], start: usize, parallel: bool) -> Vec<f32> {
    let (scale, round_probs) = (h.scale, h.round_probs);
    let hd = h.head_dim;
    let rep = h.heads / h.kv_heads;
    let kvw = h.kv_width();
    assert!(q.len() >= t * h.q_width() && k.len() >= (start + t) * kvw && v.len() >= (start + t) * kvw);
    let mut out = vec![0f32; t * h.q_width()];
    let fast = has_avx2();
    let one = |scores: &mut Vec<f32>, (n, o): (usize, &mut [f32])| {
        let (i, head) = (n / h.heads, n % h.heads);
        let g = head / rep;
        let qr = &q[i * h.q_width() + head * hd..][..hd];
        let keys = start + i + 1;
        let kv = (&k[g * hd..], &v[g * hd..]);
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: the CPU has AVX2 and FMA (checked once).
            unsafe { attend_one_avx2(qr, kv, kvw, keys, scale, round_probs, scores, o) };
            return;
        }
        let _ = fast;
        attend_one::<false>(qr, kv, kvw, keys, scale, round_probs, scores, o);
    };
    if parallel {
        out.par_chunks_mut(hd).enumerate().for_each_init(|| Vec::with_capacity(start + t), one);
    } else {
        let mut scores = Vec::with_capacity(start + t);
        out.chunks_mut(hd).enumerate().for_each(|p| one(&mut scores, p));
    }
    out
}

/// One query row and head: scores over `keys` cached rows (`kv` start at the
/// head's group, rows `kvw` apart), softmax, weighted sum of values into `o`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_one<const SIMD: bool>(qr: &[f32], kv: (&[f32], &[f32]), kvw: usize, keys: usize, scale: f32, round_probs: bool, scores: &mut Vec<f32>, o: &mut [f32]) {
    let hd = o.len();
    let (k, v) = kv;
    // Plain loops, not iterator adapters: a `Vec::extend` of a map (or a
    // `fold`) is a separate generic function that is not inlined here, so it
    // ran without this function's AVX2 (28% of a long prefill).
    scores.clear();
    scores.resize(keys, 0.0);
    let mut max = f32::NEG_INFINITY;
    let lanes = SIMD && cfg!(target_arch = "x86_64") && hd.is_multiple_of(8);
    let mut first = 0;
    #[cfg(target_arch = "x86_64")]
    if lanes {
        // Eight keys at a time (the same bits as one at a time, below).
        let mut eight = [0f32; 8];
        while first + 8 <= keys {
            // SAFETY: SIMD is set only by `attend_one_avx2` (AVX2 checked);
            // rows `first..first + 8` hold `hd` values, a multiple of 8.
            #[allow(unsafe_code)]
            unsafe {
                crate::rows_x86::dot_lanes8(qr, &k[first * kvw..], kvw, &mut eight)
            };
            for (s, d) in scores[first..first + 8].iter_mut().zip(eight) {
                *s = d * scale;
                max = max.max(*s);
            }
            first += 8;
        }
    }
    for (p, s) in scores.iter_mut().enumerate().skip(first) {
        let kr = &k[p * kvw..][..hd];
        #[cfg(target_arch = "x86_64")]
        if lanes {
            // SAFETY: SIMD is set only by `attend_one_avx2` (AVX2 checked);
            // both rows hold `hd` values, a multiple of 8.
            #[allow(unsafe_code)]
            {
                *s = unsafe { crate::rows_x86::dot_lanes(qr, kr) } * scale;
            }
            max = max.max(*s);
            continue;
        }
        *s = dot(qr, kr) * scale;
        max = max.max(*s);
    }
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        // SAFETY: SIMD is set only by `attend_one_avx2`, whose caller checked
        // AVX2 and FMA.
        #[allow(unsafe_code)]
        {
            done = unsafe { crate::rows_x86::exp_minus(scores, max) };
        }
    }
    for s in scores[done..].iter_mut() {
        *s = crate::expf::exp(*s - max);
    }
    // The sum in position order, whichever path took the exponentials.
    let mut sum = 0f32;
    for s in scores.iter() {
        sum += s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
    if round_probs {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if SIMD {
            // SAFETY: as above (F16C comes with the AVX2 level).
            #[allow(unsafe_code)]
            {
                done = unsafe { crate::rows_x86::round_f16(scores) };
            }
        }
        round_f16_scalar(&mut scores[done..]);
    }
    o.fill(0.0);
    #[cfg(target_arch = "x86_64")]
    if lanes {
        // SAFETY: as above; `v` holds `keys` rows `kvw` apart from the head's
        // group, each with `hd` values.
        #[allow(unsafe_code)]
        unsafe {
            crate::rows_x86::weigh_rows(o, scores, v, kvw)
        };
        return;
    }
    for (p, &w) in scores.iter().enumerate() {
        for (acc, x) in o.iter_mut().zip(&v[p * kvw..][..hd]) {
            *acc += w * x;
        }
    }
}

/// [`attend_one`] compiled for AVX2/FMA/F16C (the same operations in the same
/// order, eight lanes wide; exponentials and f16 rounding on eight lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code, clippy::too_many_arguments)]
unsafe fn attend_one_avx2(qr: &[f32], kv: (&[f32], &[f32]), kvw: usize, keys: usize, scale: f32, round_probs: bool, scores: &mut Vec<f32>, o: &mut [f32]) {
    attend_one::<true>(qr, kv, kvw, keys, scale, round_probs, scores, o)
}

fn has_avx2() -> bool {
    // The level chosen at run time (capped by REKA_CPU_ISA) covers AVX2 and FMA.
    crate::cpu::selected() >= crate::cpu::Isa::Avx2
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Reference for [`attention`]: the textbook formula per query and head, in f64.
pub fn attention_slow(h: Heads, q: &[f32], t: usize, k: &[f32], v: &[f32], start: usize) -> Vec<f32> {
    let scale = h.scale;
    let hd = h.head_dim;
    let (qw, kvw) = (h.q_width(), h.kv_width());
    let mut out = vec![0f32; t * qw];
    for i in 0..t {
        for head in 0..h.heads {
            let g = head * h.kv_heads / h.heads;
            let s: Vec<f64> = (0..=start + i)
                .map(|p| (0..hd).map(|d| q[i * qw + head * hd + d] as f64 * k[p * kvw + g * hd + d] as f64).sum::<f64>() * scale as f64)
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                let y: f64 = e.iter().enumerate().map(|(p, w)| w / z * v[p * kvw + g * hd + d] as f64).sum();
                out[i * qw + head * hd + d] = y as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn noise(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn attention_matches_the_slow_reference() {
        let mut s = 3;
        for (h, start, t) in [
            (Heads { heads: 4, kv_heads: 1, head_dim: 8, scale: 0.3, round_probs: false }, 0, 5),
            (Heads { heads: 9, kv_heads: 3, head_dim: 64, scale: 0.3, round_probs: false }, 17, 1),
            (Heads { heads: 6, kv_heads: 6, head_dim: 12, scale: 0.3, round_probs: false }, 3, 4),
        ] {
            let q = noise(t * h.heads * h.head_dim, &mut s);
            let k = noise((start + t) * h.kv_width(), &mut s);
            let v = noise((start + t) * h.kv_width(), &mut s);
            let fast = attention(h, &q, t, &k, &v, start);
            let slow = attention_slow(h, &q, t, &k, &v, start);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5, "{h:?}: {a} vs {b}");
            }
        }
    }

    /// The vector path (exponentials, f16 rounding on eight lanes) gives the
    /// scalar path's bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_and_scalar_paths_give_the_same_bits() {
        if !has_avx2() {
            eprintln!("attention: no AVX2 here; the vector path is not tested");
            return;
        }
        let h = Heads { heads: 9, kv_heads: 3, head_dim: 64, scale: 0.125, round_probs: true };
        let mut s = 21;
        let (start, t) = (37, 5);
        let q = noise(t * h.q_width(), &mut s);
        let (k, v) = (noise((start + t) * h.kv_width(), &mut s), noise((start + t) * h.kv_width(), &mut s));
        for round_probs in [true, false] {
            let h = Heads { round_probs, ..h };
            for i in 0..t {
                for head in 0..h.heads {
                    let qr = &q[i * h.q_width() + head * 64..][..64];
                    let kv = (&k[(head / 3) * 64..], &v[(head / 3) * 64..]);
                    let (mut a, mut b) = (vec![0f32; 64], vec![0f32; 64]);
                    let mut scores = Vec::new();
                    attend_one::<false>(qr, kv, h.kv_width(), start + i + 1, h.scale, round_probs, &mut scores, &mut a);
                    // SAFETY: AVX2 checked above.
                    #[allow(unsafe_code)]
                    unsafe {
                        attend_one_avx2(qr, kv, h.kv_width(), start + i + 1, h.scale, round_probs, &mut scores, &mut b)
                    };
                    assert_eq!(a, b, "row {i} head {head} round_probs {round_probs}");
                }
            }
        }
    }

    /// The eight-lane rounding gives `half`'s bits, specials and ties included,
    /// and the serial attention the parallel one's.
    #[test]
    fn fast_rounding_and_serial_attention_give_the_same_bits() {
        let mut s = 5;
        let mut x: Vec<f32> = noise(1003, &mut s).iter().map(|v| v * 70000.0).collect();
        x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0, 1e-8, -6e-8, 65504.0, 65520.0, 1.0 + 1.0 / 2048.0, 1.0 + 3.0 / 2048.0]);
        x.extend((0..64).map(|i| f32::from_bits(0x3380_0000 + i * 0x1000)));
        let (mut a, mut b) = (x.clone(), x.clone());
        round_f16(&mut a);
        round_f16_scalar(&mut b);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        let h = Heads { heads: 9, kv_heads: 3, head_dim: 64, scale: 0.125, round_probs: true };
        let (start, t) = (29, 3);
        let q = noise(t * h.q_width(), &mut s);
        let (k, v) = (noise((start + t) * h.kv_width(), &mut s), noise((start + t) * h.kv_width(), &mut s));
        assert_eq!(attention_with(h, &q, t, &k, &v, start, false), attention(h, &q, t, &k, &v, start));
    }

    /// A prompt in one step and the same prompt one token at a time agree.
    #[test]
    fn chunking_does_not_change_the_result() {
        let h = Heads { heads: 4, kv_heads: 2, head_dim: 8, scale: 0.35, round_probs: true };
        let mut s = 9;
        let (q, k, v) = (noise(6 * 32, &mut s), noise(6 * 16, &mut s), noise(6 * 16, &mut s));
        let whole = attention(h, &q, 6, &k, &v, 0);
        for i in 0..6 {
            let one = attention(h, &q[i * 32..], 1, &k, &v, i);
            assert_eq!(&whole[i * 32..(i + 1) * 32], &one[..]);
        }
    }

    /// Partial rotary: the first `rot` dims rotate as a head of `rot` dims
    /// would, the rest pass through untouched.
    #[test]
    fn partial_rotary_rotates_the_first_dims_only() {
        let (hd, rot, heads) = (8, 4, 2);
        let mut s = 9;
        let x = noise(heads * hd, &mut s);
        let (cos, sin): (Vec<f32>, Vec<f32>) = (0..3 * hd / 2).map(|i| ((i as f32 * 0.3).cos(), (i as f32 * 0.3).sin())).unzip();
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let mut got = x.clone();
            rope_rows(&mut got, hd, rot, &[2], &cos, &sin, style);
            let mut want: Vec<f32> = Vec::new();
            for head in x.chunks_exact(hd) {
                let mut r = head[..rot].to_vec();
                let (c, sn): (Vec<f32>, Vec<f32>) = (0..rot / 2).map(|j| (cos[2 * hd / 2 + j], sin[2 * hd / 2 + j])).unzip();
                rope_rows(&mut r, rot, rot, &[0], &c, &sn, style);
                want.extend(r);
                want.extend_from_slice(&head[rot..]);
            }
            assert_eq!(got, want, "{style:?}");
        }
    }

    #[test]
    fn rope_rows_matches_the_tensor_rope() {
        let (heads, hd, t, start) = (3, 8, 4, 5);
        let mut s = 5;
        let x = noise(t * heads * hd, &mut s);
        let angles: Vec<f32> = (0..(start + t) * hd / 2).map(|i| ((i / (hd / 2)) as f32) * 0.1 * ((i % (hd / 2)) as f32 + 1.0)).collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let d = Device::Cpu;
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let mut rows = x.clone();
            let pos: Vec<usize> = (start..start + t).collect();
            rope_rows(&mut rows, hd, hd, &pos, &cos, &sin, style);
            let xt = Tensor::from_vec(x.clone(), (1, t, heads, hd), &d).unwrap().transpose(1, 2).unwrap();
            let c = Tensor::from_vec(cos.clone(), (start + t, hd / 2), &d).unwrap().narrow(0, start, t).unwrap();
            let sn = Tensor::from_vec(sin.clone(), (start + t, hd / 2), &d).unwrap().narrow(0, start, t).unwrap();
            let want = crate::rope_slow(&xt, &c, &sn, style).unwrap().transpose(1, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (a, b) in rows.iter().zip(&want) {
                assert!((a - b).abs() < 1e-6, "{style:?}: {a} vs {b}");
            }
        }
    }
}
