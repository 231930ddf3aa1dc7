//! The Whisper audio encoder, read from a CTranslate2 `model.bin` (the
//! `encoder/...` variables of a `WhisperSpec`), run with candle CPU ops.
//!
//! Log-mel `[n, mel_bins, T]` → conv1 (k3, pad 1) + GELU → conv2 (k3, stride 2,
//! pad 1) + GELU → + position encodings (first T/2 rows) → pre-LN transformer
//! layers (self-attention, GELU MLP) → final LayerNorm → `[n, T/2, width]`.
//!
//! CTranslate2 stores the attention's q, k and v projections fused in one
//! `self_attention/linear_0` (`[3·width, width]`, rows q then k then v; Whisper's
//! key has no bias, so that third of the bias is zero) and the output
//! projection as `linear_1`; the MLP is `ffn/linear_0` and `ffn/linear_1`;
//! LayerNorms are `gamma`/`beta`. GELU is the exact (erf) one, LayerNorm ε 1e-5.

use std::path::Path;

use anyhow::{bail, ensure, Context};
use candle_core::{Device, Module, Tensor};

use crate::ct2::Ct2Model;

/// LayerNorm ε of Whisper (PyTorch's default, which CTranslate2 also uses).
const LN_EPS: f32 = 1e-5;

/// The encoder's shapes, all taken from the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperEncoderConfig {
    /// Hidden width (384 for tiny).
    pub width: usize,
    /// Transformer layers (4 for tiny).
    pub layers: usize,
    /// Attention heads (6 for tiny).
    pub heads: usize,
    /// Mel bins of the input (80; 128 for large-v3).
    pub mel_bins: usize,
    /// Position encodings = the longest output (1500, i.e. 3000 input frames).
    pub max_positions: usize,
}

struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, LN_EPS)
    }
}

/// A dense layer with its weight stored transposed (`[in, out]`, contiguous).
struct Dense {
    w_t: Tensor,
    b: Tensor,
}

impl Dense {
    /// `x`: `[rows, in]` → `[rows, out]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w_t)?.broadcast_add(&self.b)
    }
}

struct Layer {
    attn_ln: LayerNorm,
    qkv: Dense,
    out: Dense,
    ffn_ln: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

/// The Whisper encoder with its weights in f32 on the CPU.
pub struct WhisperEncoder {
    config: WhisperEncoderConfig,
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    positions: Tensor,
    layers: Vec<Layer>,
    final_ln: LayerNorm,
}

struct Loader<'a> {
    model: &'a Ct2Model,
    device: Device,
}

impl Loader<'_> {
    fn tensor(&self, name: &str) -> anyhow::Result<Tensor> {
        self.model.tensor(name, &self.device).with_context(|| format!("loading {name}"))
    }

    fn vector(&self, name: &str, len: usize) -> anyhow::Result<Tensor> {
        let t = self.tensor(name)?;
        ensure!(t.dims() == [len], "{name}: dims {:?}, want [{len}]", t.dims());
        Ok(t)
    }

    fn layer_norm(&self, prefix: &str, width: usize) -> anyhow::Result<LayerNorm> {
        Ok(LayerNorm {
            gamma: self.vector(&format!("{prefix}/gamma"), width)?,
            beta: self.vector(&format!("{prefix}/beta"), width)?,
        })
    }

    fn dense(&self, prefix: &str, inputs: usize, outputs: usize) -> anyhow::Result<Dense> {
        let name = format!("{prefix}/weight");
        let w = self.tensor(&name)?;
        ensure!(w.dims() == [outputs, inputs], "{name}: dims {:?}, want [{outputs}, {inputs}]", w.dims());
        Ok(Dense { w_t: w.t()?.contiguous()?, b: self.vector(&format!("{prefix}/bias"), outputs)? })
    }
}

impl WhisperEncoder {
    /// Loads the encoder from a CTranslate2 Whisper `model.bin`; the decoder's
    /// variables are skipped without being read into memory.
    pub fn from_ct2(path: &Path) -> anyhow::Result<Self> {
        let model = Ct2Model::read(path, |name| name.starts_with("encoder/"))
            .with_context(|| format!("reading CTranslate2 model {}", path.display()))?;
        ensure!(model.spec_name == "WhisperSpec", "{}: spec {:?}, want WhisperSpec", path.display(), model.spec_name);
        Self::from_model(&model).with_context(|| format!("building the Whisper encoder from {}", path.display()))
    }

    /// Builds the encoder from the `encoder/...` variables of a read model.
    pub fn from_model(model: &Ct2Model) -> anyhow::Result<Self> {
        let ld = Loader { model, device: Device::Cpu };
        let conv1_w = ld.tensor("encoder/conv1/weight")?;
        let &[width, mel_bins, k1] = conv1_w.dims() else {
            bail!("encoder/conv1/weight: dims {:?}, want rank 3", conv1_w.dims())
        };
        ensure!(k1 == 3, "encoder/conv1/weight: kernel {k1}, want 3");
        let conv2_w = ld.tensor("encoder/conv2/weight")?;
        ensure!(
            conv2_w.dims() == [width, width, 3],
            "encoder/conv2/weight: dims {:?}, want [{width}, {width}, 3]",
            conv2_w.dims()
        );
        let positions = ld.tensor("encoder/position_encodings/encodings")?;
        let &[max_positions, pos_width] = positions.dims() else {
            bail!("position encodings: dims {:?}, want rank 2", positions.dims())
        };
        ensure!(pos_width == width, "position encodings width {pos_width}, want {width}");
        let heads = usize::try_from(model.int_scalar("encoder/num_heads")?).context("encoder/num_heads")?;
        ensure!(heads > 0 && width % heads == 0, "width {width} does not split into {heads} heads");
        let layers =
            (0..).take_while(|i| model.contains(&format!("encoder/layer_{i}/self_attention/linear_0/weight"))).count();
        ensure!(layers > 0, "no encoder/layer_0 in the model");
        let layers = (0..layers)
            .map(|i| {
                let p = format!("encoder/layer_{i}");
                let fc1 = ld.dense(
                    &format!("{p}/ffn/linear_0"),
                    width,
                    ld.tensor(&format!("{p}/ffn/linear_0/bias"))?.elem_count(),
                )?;
                let hidden = fc1.b.elem_count();
                Ok(Layer {
                    attn_ln: ld.layer_norm(&format!("{p}/self_attention/layer_norm"), width)?,
                    qkv: ld
                        .dense(&format!("{p}/self_attention/linear_0"), width, 3 * width)
                        .context("want q, k, v fused in linear_0")?,
                    out: ld.dense(&format!("{p}/self_attention/linear_1"), width, width)?,
                    ffn_ln: ld.layer_norm(&format!("{p}/ffn/layer_norm"), width)?,
                    fc1,
                    fc2: ld.dense(&format!("{p}/ffn/linear_1"), hidden, width)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            config: WhisperEncoderConfig { width, layers: layers.len(), heads, mel_bins, max_positions },
            conv1_b: ld.vector("encoder/conv1/bias", width)?.reshape((1, width, 1))?,
            conv2_b: ld.vector("encoder/conv2/bias", width)?.reshape((1, width, 1))?,
            conv1_w,
            conv2_w,
            positions,
            layers,
            final_ln: ld.layer_norm("encoder/layer_norm", width)?,
        })
    }

    /// The shapes read from the weights.
    pub fn config(&self) -> WhisperEncoderConfig {
        self.config
    }

    /// Log-mel f32 `[n, mel_bins, T]` (T even, T/2 ≤ max_positions, i.e. T ≤ 3000)
    /// → encoder output `[n, T/2, width]` after the final LayerNorm.
    pub fn forward(&self, mel: &Tensor) -> candle_core::Result<Tensor> {
        let c = self.config;
        let (n, bins, frames) = mel.dims3()?;
        if bins != c.mel_bins || frames == 0 || frames % 2 != 0 || frames / 2 > c.max_positions {
            candle_core::bail!(
                "Whisper encoder input {:?}: want [n, {}, T] with T even, 0 < T <= {}",
                mel.dims(),
                c.mel_bins,
                2 * c.max_positions
            );
        }
        let mel = mel.to_dtype(candle_core::DType::F32)?.contiguous()?;
        let x = mel.conv1d(&self.conv1_w, 1, 1, 1, 1)?.broadcast_add(&self.conv1_b)?.gelu_erf()?;
        let x = x.conv1d(&self.conv2_w, 1, 2, 1, 1)?.broadcast_add(&self.conv2_b)?.gelu_erf()?;
        let t = x.dim(2)?;
        let x = x.transpose(1, 2)?.broadcast_add(&self.positions.narrow(0, 0, t)?)?;
        // Work on [n·t, width] rows; attention reshapes per sequence.
        let mut x = x.reshape((n * t, c.width))?;
        for layer in &self.layers {
            x = (&x + self.attention(layer, &layer.attn_ln.forward(&x)?, n, t)?)?;
            let h = layer.fc1.forward(&layer.ffn_ln.forward(&x)?)?.gelu_erf()?;
            x = (&x + layer.fc2.forward(&h)?)?;
        }
        self.final_ln.forward(&x)?.reshape((n, t, c.width))
    }

    /// Self-attention over `x`: `[n·t, width]` → `[n·t, width]`.
    fn attention(&self, layer: &Layer, x: &Tensor, n: usize, t: usize) -> candle_core::Result<Tensor> {
        let c = self.config;
        let head_dim = c.width / c.heads;
        // [n, t, 3, heads, head_dim] → [3, n, heads, t, head_dim]
        let qkv = layer.qkv.forward(x)?.reshape((n, t, 3, c.heads, head_dim))?.permute((2, 0, 3, 1, 4))?;
        let q = (qkv.get(0)?.contiguous()? * (1.0 / (head_dim as f64).sqrt()))?;
        let k_t = qkv.get(1)?.t()?.contiguous()?; // [n, heads, head_dim, t]: a plain gemm operand
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k_t)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((n * t, c.width))?;
        layer.out.forward(&ctx)
    }
}

impl Module for WhisperEncoder {
    fn forward(&self, mel: &Tensor) -> candle_core::Result<Tensor> {
        WhisperEncoder::forward(self, mel)
    }
}
