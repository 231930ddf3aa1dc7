//! The decoder's hot-path ops, behind one seam so that the model code does not care
//! where they run.
//!
//! Each op has a fast path (today: candle's fused CPU ops; with the `cuda` feature,
//! later, our own CUDA kernels) and a `*_slow` reference written with plain tensor
//! arithmetic. Tests compare the two, so a new fast path is always checked against
//! an independent formulation of the same maths.

pub mod attention;
pub mod awake;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod expf;
pub mod half_matmul;
pub mod kquant;
#[cfg(target_arch = "x86_64")]
mod kquant_avx2;
pub mod kquant_q8k;
mod kquant_scalar;
#[cfg(test)]
mod kquant_tests;
pub mod kquant_tiles;
#[cfg(test)]
mod kquant_tiles_tests;
#[cfg(target_arch = "x86_64")]
mod kquant_tiles_x86;
pub mod quant;
pub mod quant_tiles;
#[cfg(target_arch = "x86_64")]
mod quant_tiles_x86;
#[cfg(target_arch = "x86_64")]
mod rows_x86;
mod tile_pass;

use candle_core::{DType, Result, Tensor, D};

/// A matmul result computed as `[rows, t]` (so that parallel tasks own
/// disjoint slices), returned as `[t, rows]`.
pub(crate) fn rows_to_tokens(yt: Vec<f32>, rows: usize, t: usize) -> Vec<f32> {
    if t == 1 {
        return yt;
    }
    let mut y = vec![0f32; t * rows];
    for r in 0..rows {
        for j in 0..t {
            y[j * rows + r] = yt[r * t + j];
        }
    }
    y
}

/// A deterministic stream in [-1, 1): the kernels' self-checks and tests.
pub(crate) fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps)
}

/// Reference for [`rms_norm`], computed in f32.
pub fn rms_norm_slow(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x.broadcast_div(&(mean_sq + eps as f64)?.sqrt()?)?;
    normed
        .broadcast_mul(&weight.to_dtype(DType::F32)?)?
        .to_dtype(dtype)
}

/// Which pairs of a head's dimensions a rotary embedding rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): GGUF llama files (Q/K permuted for llama.cpp).
    Interleaved,
    /// Halves (i, i + d/2): Hugging Face checkpoints (`rotate_half`).
    Halves,
}

/// Rotary position embedding of `x` `[batch, heads, seq, head_dim]` with
/// `cos`/`sin` `[seq, head_dim / 2]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let x = x.contiguous()?;
    match style {
        RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, cos, sin),
        RopeStyle::Halves => candle_nn::rotary_emb::rope(&x, cos, sin),
    }
}

/// Reference for [`rope`], written out pair by pair.
pub fn rope_slow(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    let half = d / 2;
    let cos = cos.reshape((1, 1, t, half))?;
    let sin = sin.reshape((1, 1, t, half))?;
    let (a, bb) = match style {
        RopeStyle::Interleaved => {
            let pairs = x.reshape((b, h, t, half, 2))?;
            (
                pairs.narrow(4, 0, 1)?.squeeze(4)?,
                pairs.narrow(4, 1, 1)?.squeeze(4)?,
            )
        }
        RopeStyle::Halves => (x.narrow(3, 0, half)?, x.narrow(3, half, half)?),
    };
    let ra = (a.broadcast_mul(&cos)? - bb.broadcast_mul(&sin)?)?;
    let rb = (a.broadcast_mul(&sin)? + bb.broadcast_mul(&cos)?)?;
    match style {
        RopeStyle::Interleaved => Tensor::stack(&[ra, rb], 4)?.reshape((b, h, t, d)),
        RopeStyle::Halves => Tensor::cat(&[ra, rb], 3),
    }
}

/// SwiGLU's gate: `silu(gate) * up`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    candle_nn::ops::silu(gate)? * up
}

/// [`swiglu`] in place on plain rows: `gate[i] = silu(gate[i]) · up[i]`.
pub fn swiglu_rows(gate: &mut [f32], up: &[f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if cpu::selected() >= cpu::Isa::Avx2 {
        // SAFETY: the CPU has AVX2 and FMA (`selected` never exceeds what it has).
        #[allow(unsafe_code)]
        {
            done = unsafe { rows_x86::swiglu(gate, up) };
        }
    }
    for (g, u) in gate[done..].iter_mut().zip(&up[done..]) {
        *g = *g / (1.0 + crate::expf::exp(-*g)) * u;
    }
}

/// `log Σ exp(logits)` (`-inf` when all are `-inf`) on AVX2, for the
/// log-probs the engine hands back with every step: the exponentials on eight
/// lanes in f32 (within 2 ulp) and summed in f64, so within ~1e-6 of the
/// all-f64 formula (`reka_protocol::logprobs::logsumexp`, which callers use
/// when this gives `None`: no AVX2 at the selected level).
pub fn logsumexp_fast(logits: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if cpu::selected() >= cpu::Isa::Avx2 {
        // SAFETY: the CPU has AVX2 and FMA (`selected` never exceeds what it has).
        #[allow(unsafe_code)]
        let (max, sum) = unsafe { rows_x86::exp_sum(logits) };
        return Some(if max.is_finite() { max + sum.ln() as f32 } else { max });
    }
    let _ = logits;
    None
}

/// Reference for [`swiglu`]: `gate / (1 + exp(-gate)) * up`.
pub fn swiglu_slow(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let sig = (gate.neg()?.exp()? + 1.0)?.recip()?;
    (gate * sig)? * up
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax_last_dim(x)
}

/// Reference for [`softmax_last_dim`], max-subtracted.
pub fn softmax_last_dim_slow(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    fn randn(shape: &[usize]) -> Result<Tensor> {
        Tensor::randn(0f32, 1.0, shape, &Device::Cpu)
    }

    #[test]
    fn logsumexp_is_within_a_millionth_of_the_f64_formula() {
        let Some(_) = logsumexp_fast(&[0.0]) else {
            eprintln!("logsumexp_fast: no AVX2 here; not tested");
            return;
        };
        let logsumexp = |l: &[f32]| logsumexp_fast(l).unwrap_or(f32::NAN);
        let mut s = 77u64;
        for n in [1usize, 7, 8, 100, 49152] {
            let l: Vec<f32> = (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 60.0 - 40.0
                })
                .collect();
            let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let want = max + l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            let got = logsumexp(&l) as f64;
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "n={n}: {got} vs {want}");
        }
        assert_eq!(logsumexp(&[f32::NEG_INFINITY; 9]), f32::NEG_INFINITY);
        assert!(logsumexp(&[f32::NAN; 9]).is_nan() || logsumexp(&[f32::NAN; 9]) == f32::NEG_INFINITY);
    }

    #[test]
    fn rms_norm_matches_slow() -> Result<()> {
        let x = randn(&[3, 5, 64])?;
        let w = randn(&[64])?;
        let d = max_abs_diff(&rms_norm(&x, &w, 1e-5)?, &rms_norm_slow(&x, &w, 1e-5)?)?;
        assert!(d < 1e-5, "max |Δ| = {d}");
        Ok(())
    }

    #[test]
    fn rope_matches_slow_in_both_styles() -> Result<()> {
        let (t, d) = (7, 16);
        let x = randn(&[2, 3, t, d])?;
        let theta = randn(&[t, d / 2])?;
        let (cos, sin) = (theta.cos()?, theta.sin()?);
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let diff = max_abs_diff(
                &rope(&x, &cos, &sin, style)?,
                &rope_slow(&x, &cos, &sin, style)?,
            )?;
            assert!(diff < 1e-5, "{style:?}: max |Δ| = {diff}");
        }
        Ok(())
    }

    #[test]
    fn swiglu_and_softmax_match_slow() -> Result<()> {
        let g = randn(&[4, 96])?;
        let u = randn(&[4, 96])?;
        let d = max_abs_diff(&swiglu(&g, &u)?, &swiglu_slow(&g, &u)?)?;
        assert!(d < 1e-5, "swiglu max |Δ| = {d}");
        let mut rows: Vec<f32> = g.flatten_all()?.to_vec1()?;
        let up: Vec<f32> = u.flatten_all()?.to_vec1()?;
        swiglu_rows(&mut rows, &up);
        // The vector path gives the scalar formula's bits.
        let mut scalar: Vec<f32> = g.flatten_all()?.to_vec1()?;
        for (g, u) in scalar.iter_mut().zip(&up) {
            *g = *g / (1.0 + crate::expf::exp(-*g)) * u;
        }
        assert_eq!(rows, scalar, "swiglu_rows vs its scalar formula");
        let d = max_abs_diff(&Tensor::from_vec(rows, (4, 96), g.device())?, &swiglu_slow(&g, &u)?)?;
        assert!(d < 1e-5, "swiglu_rows max |Δ| = {d}");
        let d = max_abs_diff(&softmax_last_dim(&g)?, &softmax_last_dim_slow(&g)?)?;
        assert!(d < 1e-6, "softmax max |Δ| = {d}");
        Ok(())
    }
}
