//! ConvNeXt V2 (Woo et al., 2023), the vision tower of Reka Edge, on candle,
//! CPU, f32, computing what transformers' `ConvNextV2Model` computes for
//! `last_hidden_state` (the final LayerNorm, used only for the pooled output,
//! is not applied).
//!
//! Activations are kept channels-last, `[n, h, w, c]`, so that the per-pixel
//! layers (LayerNorm, the two pointwise linears, GRN) are matrix operations on
//! `[n·h·w, c]` rows. The non-overlapping convolutions (the stride-`p` stem and
//! the 2×2 downsamplers) are patch gathers plus one matmul; the 7×7 depthwise
//! convolution is a direct loop, parallel over rows.
//!
//! - Stem: `patch×patch` conv, stride `patch`, then LayerNorm over channels.
//! - Stage `s > 0` opens with LayerNorm + 2×2 stride-2 conv (`hidden_sizes[s-1] →
//!   hidden_sizes[s]`); stage 0 has no downsampler.
//! - Block: dwconv 7×7 (pad 3) → LayerNorm → Linear C→4C → GELU (erf) → GRN →
//!   Linear 4C→C → residual. GRN: `g = ‖x‖₂` over the spatial positions per
//!   channel, `n = g / (mean_c g + 1e-6)`, `y = γ·(x·n) + β + x`.
//! - Every LayerNorm inside uses eps 1e-6, as transformers hard-codes.

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::Linear;
use rayon::prelude::*;

/// LayerNorm epsilon of every norm inside the network.
pub const EPS: f64 = 1e-6;

/// The network's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvNextV2Config {
    pub hidden_sizes: Vec<usize>,
    pub depths: Vec<usize>,
    pub patch_size: usize,
    pub in_channels: usize,
}

impl ConvNextV2Config {
    /// The feature map's side for an input of side `image`: `image / (patch · 2^(stages−1))`.
    pub fn feature_side(&self, image: usize) -> usize {
        (image / self.patch_size.max(1)) >> self.hidden_sizes.len().saturating_sub(1)
    }

    /// Channels of the output.
    pub fn out_channels(&self) -> usize {
        self.hidden_sizes.last().copied().unwrap_or(0)
    }
}

/// A weight source: the tensor named as in transformers' `ConvNextV2Model`
/// state dict (e.g. `encoder.stages.0.layers.1.dwconv.weight`), as f32 with
/// `numel` elements (its shape is the caller's to give).
pub type Source<'a> = dyn FnMut(&str, &[usize]) -> anyhow::Result<Tensor> + 'a;

struct Norm {
    w: Tensor,
    b: Tensor,
}

impl Norm {
    fn load(src: &mut Source<'_>, p: &str, c: usize) -> anyhow::Result<Self> {
        Ok(Self { w: src(&format!("{p}.weight"), &[c])?, b: src(&format!("{p}.bias"), &[c])? })
    }

    /// Over the last dimension.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, EPS as f32)
    }
}

/// A non-overlapping `k`×`k` convolution as a matmul over gathered patches.
struct PatchConv {
    k: usize,
    /// `[cout, k·k·cin]`, columns in (ky, kx, cin) order.
    w: Tensor,
    b: Tensor,
}

impl PatchConv {
    fn load(src: &mut Source<'_>, p: &str, cin: usize, cout: usize, k: usize) -> anyhow::Result<Self> {
        let w = src(&format!("{p}.weight"), &[cout, cin, k, k])?.permute((0, 2, 3, 1))?.reshape((cout, k * k * cin))?;
        Ok(Self { k, w, b: src(&format!("{p}.bias"), &[cout])? })
    }

    /// `[n, h, w, cin]` → `[n, h/k, w/k, cout]` (trailing rows / columns that do
    /// not fill a patch are dropped, as a strided conv drops them).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let (k, oh, ow) = (self.k, h / self.k, w / self.k);
        let x = x.narrow(1, 0, oh * k)?.narrow(2, 0, ow * k)?;
        // [n, oh, k, ow, k, c] → [n, oh, ow, k, k, c]
        let p = x.reshape((n, oh, k, ow, k, c))?.permute((0, 1, 3, 2, 4, 5))?.contiguous()?;
        let rows = p.reshape((n * oh * ow, k * k * c))?;
        let y = rows.matmul(&self.w.t()?)?.broadcast_add(&self.b)?;
        y.reshape((n, oh, ow, ()))
    }
}

struct Block {
    /// `[7, 7, c]`.
    dw_w: Vec<f32>,
    dw_b: Vec<f32>,
    norm: Norm,
    pw1: Linear,
    grn_g: Tensor,
    grn_b: Tensor,
    pw2: Linear,
}

fn linear(src: &mut Source<'_>, p: &str, inp: usize, out: usize) -> anyhow::Result<Linear> {
    Ok(Linear::new(src(&format!("{p}.weight"), &[out, inp])?, Some(src(&format!("{p}.bias"), &[out])?)))
}

impl Block {
    fn load(src: &mut Source<'_>, p: &str, c: usize) -> anyhow::Result<Self> {
        let dw = src(&format!("{p}.dwconv.weight"), &[c, 1, 7, 7])?;
        let dw_w = dw.reshape((c, 49))?.t()?.contiguous()?.flatten_all()?.to_vec1()?;
        let dw_b = src(&format!("{p}.dwconv.bias"), &[c])?.to_vec1()?;
        Ok(Self {
            dw_w,
            dw_b,
            norm: Norm::load(src, &format!("{p}.layernorm"), c)?,
            pw1: linear(src, &format!("{p}.pwconv1"), c, 4 * c)?,
            grn_g: src(&format!("{p}.grn.weight"), &[4 * c])?,
            grn_b: src(&format!("{p}.grn.bias"), &[4 * c])?,
            pw2: linear(src, &format!("{p}.pwconv2"), 4 * c, c)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let y = depthwise7(x, &self.dw_w, &self.dw_b)?;
        let y = self.norm.forward(&y.reshape((n * h * w, c))?)?;
        let y = self.pw1.forward(&y)?.gelu_erf()?.reshape((n, h * w, 4 * c))?;
        // GRN over the spatial positions of each image.
        let g = y.sqr()?.sum_keepdim(1)?.sqrt()?; // [n, 1, 4c]
        let nx = g.broadcast_div(&(g.mean_keepdim(D::Minus1)? + 1e-6)?)?;
        let y = (y.broadcast_mul(&nx)?.broadcast_mul(&self.grn_g)?.broadcast_add(&self.grn_b)? + &y)?;
        let y = self.pw2.forward(&y.reshape((n * h * w, 4 * c))?)?;
        x + y.reshape((n, h, w, c))?
    }
}

/// 7×7 depthwise convolution, zero padding 3, on `[n, h, w, c]`; `wt` is
/// `[7, 7, c]`.
fn depthwise7(x: &Tensor, wt: &[f32], bias: &[f32]) -> Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    let src = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(w * c).enumerate().for_each(|(row, o)| {
        let (img, y) = (row / h, row % h);
        for (x0, px) in o.chunks_exact_mut(c).enumerate() {
            px.copy_from_slice(bias);
            for ky in 0..7 {
                let sy = y as isize + ky as isize - 3;
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                for kx in 0..7 {
                    let sx = x0 as isize + kx as isize - 3;
                    if sx < 0 || sx >= w as isize {
                        continue;
                    }
                    let s = &src[((img * h + sy as usize) * w + sx as usize) * c..][..c];
                    let k = &wt[(ky * 7 + kx) * c..][..c];
                    for ((o, &a), &b) in px.iter_mut().zip(s).zip(k) {
                        *o += a * b;
                    }
                }
            }
        }
    });
    Tensor::from_vec(out, (n, h, w, c), x.device())
}

struct Stage {
    down: Option<(Norm, PatchConv)>,
    blocks: Vec<Block>,
}

/// The ConvNeXt V2 backbone.
pub struct ConvNextV2 {
    cfg: ConvNextV2Config,
    stem: PatchConv,
    stem_norm: Norm,
    stages: Vec<Stage>,
}

impl ConvNextV2 {
    /// Builds the network from `src` (names as in `ConvNextV2Model`'s state dict).
    pub fn load(cfg: ConvNextV2Config, src: &mut Source<'_>) -> anyhow::Result<Self> {
        let hs = &cfg.hidden_sizes;
        if hs.is_empty() || hs.len() != cfg.depths.len() || cfg.patch_size == 0 {
            anyhow::bail!("ConvNeXt V2 config: hidden_sizes {hs:?} and depths {:?} must be non-empty and of one length", cfg.depths);
        }
        let stem = PatchConv::load(src, "embeddings.patch_embeddings", cfg.in_channels, hs[0], cfg.patch_size)?;
        let stem_norm = Norm::load(src, "embeddings.layernorm", hs[0])?;
        let mut stages = Vec::with_capacity(hs.len());
        for (s, (&c, &depth)) in hs.iter().zip(&cfg.depths).enumerate() {
            let p = format!("encoder.stages.{s}");
            let down = if s > 0 {
                let prev = hs[s - 1];
                let norm = Norm::load(src, &format!("{p}.downsampling_layer.0"), prev)?;
                Some((norm, PatchConv::load(src, &format!("{p}.downsampling_layer.1"), prev, c, 2)?))
            } else {
                None
            };
            let blocks = (0..depth).map(|j| Block::load(src, &format!("{p}.layers.{j}"), c)).collect::<anyhow::Result<_>>()?;
            stages.push(Stage { down, blocks });
        }
        Ok(Self { cfg, stem, stem_norm, stages })
    }

    pub fn config(&self) -> &ConvNextV2Config {
        &self.cfg
    }

    /// Pixels `[n, 3, s, s]` (normalised) → features `[n, side, side, c]`,
    /// channels last (`side = s / 32` for a 4-pixel patch and four stages).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let x = pixels.permute((0, 2, 3, 1))?.contiguous()?;
        let x = self.stem.forward(&x)?;
        let mut x = self.stem_norm.forward(&x)?;
        for st in &self.stages {
            if let Some((norm, conv)) = &st.down {
                x = conv.forward(&norm.forward(&x)?)?;
            }
            for b in &st.blocks {
                x = b.forward(&x)?;
            }
        }
        Ok(x)
    }
}

/// Random weights for a network of any shape (matrices and kernels uniform
/// with std `1/√fan_in`, norm weights near 1, biases small), deterministic in
/// `seed`: for benchmarks of full-size towers.
pub fn random_source(seed: u64) -> impl FnMut(&str, &[usize]) -> anyhow::Result<Tensor> {
    let mut state = seed;
    move |name: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let one = name.ends_with("weight") && shape.len() == 1 && !name.contains("grn");
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let amp = if shape.len() > 1 { (3.0 / fan_in as f32).sqrt() } else { 0.1 };
        let v: Vec<f32> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 * amp - amp;
                if one {
                    1.0 + u
                } else {
                    u
                }
            })
            .collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    }
}
