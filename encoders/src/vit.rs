//! The image encoder: a DINOv2-style ViT (pre-norm blocks with LayerScale,
//! exact GELU MLP, a CLS token, learned position embeddings interpolated
//! bicubically to the input's patch grid) on candle, CPU.
//!
//! Weights come from an ONNX export of HF `Dinov2Model` (see [`load`] for how
//! initializers are mapped to the blocks). [`Vit::forward`] returns the last
//! hidden state after the final LayerNorm, `[n, 1 + gh*gw, hidden]`: token 0 is
//! CLS, then the patches in row-major order (row `i`, column `j` at `1 + i*gw + j`,
//! `gh = H / patch`, `gw = W / patch`). Checkpoints with register tokens are
//! rejected at load time (the DINOv2-small file we ship has none).

mod interp;
mod load;

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::LayerNorm;

/// ImageNet normalisation DINOv2 was trained with (not stored in the ONNX file:
/// its input is already-normalised pixels).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Shape of the network, read from the weights and graph where they tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    /// Input side the position embeddings were trained for: `pos_grid * patch_size`
    /// (518 for DINOv2).
    pub image_size: usize,
    /// Side of the square position-embedding grid (37 for DINOv2).
    pub pos_grid: usize,
    /// Patch side in pixels (from the patch-embedding conv kernel).
    pub patch_size: usize,
    pub in_channels: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the MLP's inner layer.
    pub mlp_hidden: usize,
    pub layers: usize,
    /// Attention heads (from the graph's head-split Reshape).
    pub heads: usize,
    /// LayerNorm epsilon (from the graph's LayerNorm constant).
    pub eps: f64,
    /// Pixel normalisation the caller applies before [`Vit::forward`].
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

struct Block {
    norm1: LayerNorm,
    /// Fused q, k, v projection: `[hidden] -> [3 * hidden]`, in that order.
    qkv: Linear,
    proj: Linear,
    ls1: Tensor,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    ls2: Tensor,
}

/// The DINOv2 ViT backbone.
pub struct Vit {
    cfg: VitConfig,
    /// Patch embedding as a matrix over flattened `[c, p, p]` patches: `[c*p*p, hidden]`.
    patch_w: Tensor,
    patch_b: Tensor,
    /// `[1, 1, hidden]`: the CLS token plus its position embedding.
    cls: Tensor,
    /// `[pos_grid, pos_grid, hidden]`.
    patch_pos: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
}

impl Vit {
    /// Loads the backbone from an ONNX export of `Dinov2Model` (extra heads in
    /// the graph, like a saliency decoder, are ignored).
    pub fn from_onnx(path: &Path) -> anyhow::Result<Vit> {
        load::from_onnx(path)
    }

    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    pub fn hidden(&self) -> usize {
        self.cfg.hidden
    }

    pub fn patch_size(&self) -> usize {
        self.cfg.patch_size
    }

    /// Last hidden state after the final LayerNorm for normalised pixels
    /// `[n, 3, H, W]` (f32, `H` and `W` multiples of the patch size):
    /// `[n, 1 + (H/p)*(W/p), hidden]`, CLS first (see the module docs).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = pixels.dims4()?;
        let p = self.cfg.patch_size;
        if c != self.cfg.in_channels || !h.is_multiple_of(p) || !w.is_multiple_of(p) || h == 0 || w == 0 {
            candle_core::bail!(
                "ViT input must be [n, {}, H, W] with H, W non-zero multiples of {p}, got {:?}",
                self.cfg.in_channels,
                pixels.dims()
            );
        }
        let (gh, gw) = (h / p, w / p);
        let d = self.cfg.hidden;
        // Patch embedding: the stride-p conv as one matmul over flattened patches.
        let patches = pixels
            .to_dtype(DType::F32)?
            .reshape((n, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((n * gh * gw, c * p * p))?;
        let x = patches.matmul(&self.patch_w)?.broadcast_add(&self.patch_b)?;
        let pos = self.pos_embed(gh, gw)?;
        let x = x.reshape((n, gh * gw, d))?.broadcast_add(&pos)?;
        let cls = self.cls.broadcast_as((n, 1, d))?;
        let mut x = Tensor::cat(&[&cls, &x], 1)?;
        for block in &self.blocks {
            x = self.block(block, &x)?;
        }
        self.norm.forward(&x)
    }

    /// Patch position embeddings for a `gh x gw` grid: `[1, gh*gw, hidden]`.
    fn pos_embed(&self, gh: usize, gw: usize) -> Result<Tensor> {
        let g = self.cfg.pos_grid;
        let d = self.cfg.hidden;
        let pos =
            if (gh, gw) == (g, g) { self.patch_pos.clone() } else { interp::bicubic_grid(&self.patch_pos, gh, gw)? };
        pos.reshape((1, gh * gw, d))
    }

    fn block(&self, b: &Block, x: &Tensor) -> Result<Tensor> {
        let (n, t, d) = x.dims3()?;
        let heads = self.cfg.heads;
        let hd = d / heads;
        let h = b.norm1.forward(x)?;
        let qkv = b.qkv.forward(&h)?.reshape((n, t, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scale = 1.0 / (hd as f64).sqrt();
        let att = (q.matmul(&k.t()?)? * scale)?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let o = att.matmul(&v)?.transpose(1, 2)?.reshape((n, t, d))?;
        let x = (x + b.proj.forward(&o)?.broadcast_mul(&b.ls1)?)?;
        let h = b.norm2.forward(&x)?;
        let h = b.fc1.forward(&h)?.gelu_erf()?;
        let h = b.fc2.forward(&h)?.broadcast_mul(&b.ls2)?;
        x + h
    }
}

/// A dense layer kept in ONNX MatMul layout: `y = x @ w + b`, `w: [in, out]`.
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    /// Applies the layer to `[.., in]` as one 2-D matmul over all leading dims.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let last = dims.len() - 1;
        let rows: usize = dims[..last].iter().product();
        let y = x.reshape((rows, dims[last]))?.matmul(&self.w)?.broadcast_add(&self.b)?;
        dims[last] = self.w.dim(1)?;
        y.reshape(dims)
    }
}

fn layer_norm(w: Tensor, b: Tensor, eps: f64) -> LayerNorm {
    LayerNorm::new(w, b, eps)
}

/// Shorthand used by the loader: an f32 tensor on the CPU.
fn cpu(data: &[f32], shape: &[usize]) -> Result<Tensor> {
    Tensor::from_slice(data, shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::interp::cubic_weights;

    #[test]
    fn cubic_rows_sum_to_one_and_identity_at_same_size() {
        for (src, dst) in [(37, 16), (37, 12), (37, 37), (37, 50), (4, 3)] {
            let m = cubic_weights(src, dst);
            assert_eq!(m.len(), src * dst);
            for r in m.chunks(src) {
                let s: f64 = r.iter().sum();
                assert!((s - 1.0).abs() < 1e-9, "{src}->{dst}: row sums to {s}");
            }
        }
        let m = cubic_weights(5, 5);
        for (i, r) in m.chunks(5).enumerate() {
            for (j, &v) in r.iter().enumerate() {
                assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }
}
