//! `exp` on f32 from IEEE operations only (no libm call), so that the CPU build
//! and the CUDA kernels (`exp_rt` in `cuda/source.cu`, the same steps) give the
//! same bits. llama.cpp's GGUF numerics round activations to 8 bits in every
//! layer; a softmax or SiLU that differs by one ulp moves such a rounding now
//! and then, and the greedy tokens of the two builds part at the next near-tie.
//!
//! Cody–Waite reduction by ln 2 (split in two), Cephes' degree-5 polynomial for
//! `(e^r - 1 - r) / r²`, and a scaling by 2ⁿ in two exact steps (so results
//! that fall to subnormals round once). Within 2 ulp of the exact value.

pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO; LN2_HI has few bits, so `n · LN2_HI` is exact.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes `expf` coefficients, highest degree first.
pub(crate) const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
/// Above this, e^x overflows f32; below `MIN`, it rounds to zero.
pub(crate) const MAX: f32 = 88.722_84;
pub(crate) const MIN: f32 = -103.972_08;

/// 2^k for k in [-126, 127], built from its bits.
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// e^x (NaN for NaN, +inf above ~88.72, 0 below ~-103.97).
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > MAX {
        return f32::INFINITY;
    }
    if x < MIN {
        return 0.0;
    }
    let n = (x * LOG2E).round();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = P[0];
    for c in &P[1..] {
        p = p.mul_add(r, *c);
    }
    let y = p.mul_add(r * r, r) + 1.0;
    let k = n as i32;
    let a = k / 2;
    y * pow2(a) * pow2(k - a)
}

#[cfg(test)]
mod tests {
    use super::exp;

    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        let ulp = (f32::from_bits(b32.to_bits() + 1) - b32).abs() as f64;
        (a as f64 - b).abs() / ulp.max(f64::from(f32::from_bits(1)))
    }

    #[test]
    fn within_two_ulp_of_f64_exp_across_the_range() {
        let mut worst = 0f64;
        let mut x = -103.0f32;
        while x < 88.7 {
            for dx in [0.0f32, 1e-3, 0.123_456, 0.5, 0.777_7] {
                let v = (x + dx).min(88.7);
                worst = worst.max(ulps(exp(v), (v as f64).exp()));
            }
            x += 0.987_654_3;
        }
        // Near zero, where softmax and SiLU live most.
        for i in -20_000..20_000 {
            let v = i as f32 * 1e-3;
            worst = worst.max(ulps(exp(v), (v as f64).exp()));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    /// SwiGLU's vector path runs the same `exp` lane by lane: equal bits
    /// across the range and at the edges.
    #[test]
    fn vector_swiglu_gives_the_scalar_bits() {
        let mut g: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.061).collect();
        g.extend([0.0, -0.0, 88.0, -88.0, 104.0, -104.0, 1e-30, f32::INFINITY, f32::NEG_INFINITY]);
        let u: Vec<f32> = (0..g.len()).map(|i| 1.0 + i as f32 * 1e-3).collect();
        let mut fast = g.clone();
        crate::swiglu_rows(&mut fast, &u);
        for ((f, g), u) in fast.iter().zip(&g).zip(&u) {
            let want = g / (1.0 + exp(-g)) * u;
            assert!(f.to_bits() == want.to_bits() || (f.is_nan() && want.is_nan()), "swiglu({g}) = {f}, scalar {want}");
        }
    }

    #[test]
    fn edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(-104.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-100.0) > 0.0, "subnormal results are kept");
        assert!(exp(88.7) < f32::INFINITY);
    }
}
