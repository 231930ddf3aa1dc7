//! Reka Edge's vision side, as Reka's vLLM plugin computes it
//! (`YasaMMLMV2ForConditionalGeneration._process_image_input`): a tile or
//! video frame → ConvNeXt V2 features `[h·w, C]` (row-major) → plus the first
//! `h·w` rows of a 2-D sin-cos table built for a **50×50** grid (rounded to
//! bf16, as the plugin keeps it) → adaptive average pooling to
//! `√num_query_tokens` per side → `Linear(C, H) → GELU (erf) → Linear(H, H)`.
//!
//! Weights come from the Hugging Face checkpoint
//! (`model.vision_model.backbone.*`, `model.language_projection.{0,2}.*`) or
//! from llama.cpp's `yasa2` mmproj GGUF (`v.*`, `mm.{0,2}.*`, the table stored
//! as `v.vision_pos_embed`).

use super::st_reader::Checkpoint;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use reka_encoders::convnext::{ConvNextV2, ConvNextV2Config};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// The grid side of the sin-cos table the model was trained with.
pub const POS_GRID: usize = 50;

/// Images and video frames of Reka Edge.
pub struct EdgeVision {
    net: ConvNextV2,
    /// `[rows, C]`: added to the first `rows` feature positions.
    pos: Option<Tensor>,
    /// Pooled side (`√num_query_tokens`).
    pool: usize,
    proj0: Linear,
    proj2: Linear,
    pub image_size: usize,
    pub max_tiles: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// The 2-D sin-cos table of `get_2d_sincos_pos_embed(dim, grid)`, flattened to
/// `[grid², dim]` row-major: for grid cell (row `i`, column `j`) the first half
/// of the channels encodes `j`, the second half `i`; each half is
/// `[sin(p·ω), cos(p·ω)]` with `ω_k = 1 / 10000^(k / (dim/4))`. Computed in f32
/// as torch does (einsum of f32 positions and f32 frequencies).
pub fn sincos_table(dim: usize, grid: usize) -> Vec<f32> {
    let q = dim / 4;
    let omega: Vec<f32> = (0..q).map(|k| 1.0 / 10000f32.powf(k as f32 / q as f32)).collect();
    let mut out = Vec::with_capacity(grid * grid * dim);
    for i in 0..grid {
        for j in 0..grid {
            for p in [j as f32, i as f32] {
                out.extend(omega.iter().map(|w| (p * w).sin()));
                out.extend(omega.iter().map(|w| (p * w).cos()));
            }
        }
    }
    out
}

/// Adaptive average pooling of `[n, h, w, c]` to `[n, out·out, c]`, cells
/// row-major, windows `[⌊i·h/out⌋, ⌈(i+1)·h/out⌉)` as torch's `AdaptiveAvgPool2d`.
pub fn adaptive_pool(x: &Tensor, out: usize) -> candle_core::Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    let mut cells = Vec::with_capacity(out * out);
    for i in 0..out {
        let (y0, y1) = (i * h / out, ((i + 1) * h).div_ceil(out));
        for j in 0..out {
            let (x0, x1) = (j * w / out, ((j + 1) * w).div_ceil(out));
            cells.push(x.narrow(1, y0, y1 - y0)?.narrow(2, x0, x1 - x0)?.mean((1, 2))?);
        }
    }
    Tensor::stack(&cells, 1)?.reshape((n, out * out, c))
}

impl EdgeVision {
    /// Placeholder tokens per tile or frame.
    pub fn tokens(&self) -> usize {
        self.pool * self.pool
    }

    pub fn config(&self) -> &ConvNextV2Config {
        self.net.config()
    }

    /// Embeddings `[items · tokens, hidden]` of `items` tiles `[items, 3, s, s]`.
    pub fn embed(&self, pixels: &[f32], items: usize) -> candle_core::Result<Tensor> {
        let s = self.image_size;
        let x = Tensor::from_slice(pixels, (items, 3, s, s), &Device::Cpu)?;
        let f = self.net.forward(&x)?; // [n, h, w, C]
        let (n, h, w, c) = f.dims4()?;
        let f = match &self.pos {
            Some(pos) if pos.dim(0)? >= h * w => {
                let p = pos.narrow(0, 0, h * w)?.reshape((1, h, w, c))?;
                f.broadcast_add(&p)?
            }
            _ => f,
        };
        let pooled = adaptive_pool(&f, self.pool)?.reshape((n * self.pool * self.pool, c))?;
        self.proj2.forward(&self.proj0.forward(&pooled)?.gelu_erf()?)
    }

    /// From a Hugging Face Reka Edge checkpoint.
    pub fn from_checkpoint(ck: &Checkpoint, cfg: &EdgeVisionConfig, hidden: usize) -> Result<Self> {
        let dev = Device::Cpu;
        let mut src = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let full = format!("model.vision_model.backbone.{name}");
            // Stored shapes may carry unit dims (GRN's (1, 1, 1, C)): the element
            // count must agree.
            let stored = ck.shape(&full).with_context(|| format!("the checkpoint has no tensor {full}"))?.to_vec();
            if stored.iter().product::<usize>() != shape.iter().product::<usize>() {
                bail!("tensor {full} has shape {stored:?}, the config wants {shape:?}");
            }
            Ok(Tensor::from_vec(ck.f32s(&full, &stored)?, shape, &dev)?)
        };
        let net = ConvNextV2::load(cfg.net.clone(), &mut src)?;
        let c = cfg.net.out_channels();
        let lin = |p: &str, i: usize, o: usize| -> Result<Linear> {
            let w = ck.tensor(&format!("model.language_projection.{p}.weight"), &[o, i], &dev)?;
            let b = ck.tensor(&format!("model.language_projection.{p}.bias"), &[o], &dev)?;
            Ok(Linear::new(w, Some(b)))
        };
        let pos = cfg.use_pos_embed.then(|| {
            // The plugin keeps the table as a bf16 buffer.
            let t = sincos_table(c, POS_GRID);
            Tensor::from_vec(t, (POS_GRID * POS_GRID, c), &dev)?.to_dtype(DType::BF16)?.to_dtype(DType::F32)
        });
        Ok(Self {
            net,
            pos: pos.transpose()?,
            pool: cfg.pool()?,
            proj0: lin("0", c, hidden)?,
            proj2: lin("2", hidden, hidden)?,
            image_size: cfg.image_size,
            max_tiles: cfg.max_tiles,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        })
    }

    /// A tower of shape `cfg` with random weights (deterministic in `seed`),
    /// for benchmarks of full-size towers without a checkpoint.
    pub fn random(cfg: &EdgeVisionConfig, hidden: usize, seed: u64) -> Result<Self> {
        let mut src = reka_encoders::convnext::random_source(seed);
        let net = ConvNextV2::load(cfg.net.clone(), &mut src)?;
        let c = cfg.net.out_channels();
        let mut lin = |p: &str, i: usize, o: usize| -> Result<Linear> {
            Ok(Linear::new(src(&format!("{p}.weight"), &[o, i])?, Some(src(&format!("{p}.bias"), &[o])?)))
        };
        let (proj0, proj2) = (lin("proj.0", c, hidden)?, lin("proj.2", hidden, hidden)?);
        let pos = Tensor::from_vec(sincos_table(c, POS_GRID), (POS_GRID * POS_GRID, c), &Device::Cpu)?;
        Ok(Self {
            net,
            pos: cfg.use_pos_embed.then_some(pos),
            pool: cfg.pool()?,
            proj0,
            proj2,
            image_size: cfg.image_size,
            max_tiles: cfg.max_tiles,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        })
    }

    /// From llama.cpp's `yasa2` mmproj GGUF, for a decoder of width `hidden`.
    /// The stage widths and depths are read from the tensors; the pooled side
    /// is 8 (llama.cpp's, the real model's 64 tokens per tile).
    pub fn from_mmproj(path: &Path, hidden: usize, max_tiles: u32) -> Result<Self> {
        let mut r = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
        let content = Content::read(&mut r).map_err(|e| anyhow!("{} is not a GGUF file: {e}", path.display()))?;
        let meta = |k: &str| content.metadata.get(k);
        match meta("clip.projector_type").and_then(|v| v.to_string().ok()) {
            Some(t) if t == "yasa2" => {}
            other => bail!("{} is not a yasa2 (Reka Edge) mmproj: clip.projector_type is {other:?}", path.display()),
        }
        let u = |k: &str| meta(k).and_then(|v| v.to_u32().ok()).map(|v| v as usize);
        let floats = |k: &str| -> Option<[f32; 3]> {
            let Value::Array(a) = meta(k)? else { return None };
            let v: Vec<f32> = a.iter().filter_map(|x| x.to_f32().ok()).collect();
            v.try_into().ok()
        };
        let names: std::collections::HashSet<String> = content.tensor_infos.keys().cloned().collect();
        let dims = |n: &str| content.tensor_infos.get(n).map(|t| t.shape.dims().to_vec());
        let mut hidden_sizes = Vec::new();
        let mut depths = Vec::new();
        for s in 0.. {
            let Some(d) = dims(&format!("v.stage.{s}.blk.0.dw.weight")) else { break };
            hidden_sizes.push(d[0]);
            depths.push((0..).take_while(|j| names.contains(&format!("v.stage.{s}.blk.{j}.dw.weight"))).count());
        }
        let patch_dims = dims("v.patch_embd.weight").context("the mmproj has no v.patch_embd.weight")?;
        let net_cfg = ConvNextV2Config {
            hidden_sizes,
            depths,
            patch_size: u("clip.vision.patch_size").unwrap_or(patch_dims[patch_dims.len() - 1]),
            in_channels: 3,
        };
        let mut get = |n: &str, shape: &[usize]| -> Result<Tensor> {
            let t = content.tensor(&mut r, n, &Device::Cpu).with_context(|| format!("reading {n}"))?;
            let t = t.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?;
            let want: usize = shape.iter().product();
            if t.elem_count() != want {
                bail!("{n} has {} values, expected {shape:?}", t.elem_count());
            }
            Ok(t.reshape(shape)?)
        };
        let net = ConvNextV2::load(net_cfg.clone(), &mut |name: &str, shape: &[usize]| get(&gguf_name(name)?, shape))?;
        let c = net_cfg.out_channels();
        let pos = if names.contains("v.vision_pos_embed") {
            let rows = dims("v.vision_pos_embed").map_or(0, |d| d.iter().product::<usize>() / c.max(1));
            Some(get("v.vision_pos_embed", &[rows, c])?)
        } else {
            None
        };
        let lin = |get: &mut dyn FnMut(&str, &[usize]) -> Result<Tensor>, i: usize, o: usize, k: u32| -> Result<Linear> {
            Ok(Linear::new(get(&format!("mm.{k}.weight"), &[o, i])?, Some(get(&format!("mm.{k}.bias"), &[o])?)))
        };
        let proj0 = lin(&mut get, c, hidden, 0)?;
        let proj2 = lin(&mut get, hidden, hidden, 2)?;
        Ok(Self {
            net,
            pos,
            pool: 8,
            proj0,
            proj2,
            image_size: u("clip.vision.image_size").unwrap_or(512),
            max_tiles,
            mean: floats("clip.vision.image_mean").unwrap_or(IMAGENET_MEAN),
            std: floats("clip.vision.image_std").unwrap_or(IMAGENET_STD),
        })
    }
}

/// The mean and std the plugin normalises with (`ConvNextImageProcessor` args).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// llama.cpp's mmproj name for a `ConvNextV2Model` state-dict name.
fn gguf_name(hf: &str) -> Result<String> {
    let simple = [
        ("embeddings.patch_embeddings.", "v.patch_embd."),
        ("embeddings.layernorm.", "v.patch_ln."),
    ];
    for (from, to) in simple {
        if let Some(rest) = hf.strip_prefix(from) {
            return Ok(format!("{to}{rest}"));
        }
    }
    let parts: Vec<&str> = hf.split('.').collect();
    match parts.as_slice() {
        ["encoder", "stages", s, "downsampling_layer", i, wb] => {
            Ok(format!("v.stage.{s}.down.{}.{wb}", if *i == "0" { "ln" } else { "conv" }))
        }
        ["encoder", "stages", s, "layers", j, part, wb] => {
            let p = match *part {
                "dwconv" => "dw",
                "layernorm" => "ln",
                "pwconv1" => "pw1",
                "grn" => "grn",
                "pwconv2" => "pw2",
                other => bail!("no mmproj name for {other}"),
            };
            Ok(format!("v.stage.{s}.blk.{j}.{p}.{wb}"))
        }
        _ => bail!("no mmproj name for {hf}"),
    }
}

/// What `config.json` says about the vision side.
#[derive(Debug, Clone)]
pub struct EdgeVisionConfig {
    pub net: ConvNextV2Config,
    pub image_size: usize,
    pub num_query_tokens: usize,
    pub max_tiles: u32,
    pub use_pos_embed: bool,
}

impl EdgeVisionConfig {
    /// The pooled side, `√num_query_tokens` (the plugin's `int(n ** 0.5)`).
    pub fn pool(&self) -> Result<usize> {
        let p = (self.num_query_tokens as f64).sqrt() as usize;
        let side = self.net.feature_side(self.image_size);
        if p == 0 || p > side {
            bail!("num_query_tokens {} pools a {side}×{side} feature map to {p}×{p}", self.num_query_tokens);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_and_pooling_windows() {
        let t = sincos_table(8, 50);
        assert_eq!(t.len(), 2500 * 8);
        // Row 1 is grid cell (row 0, column 1): the first half encodes the
        // column (ω = 1, 1/100), the second half the row (p = 0).
        assert!((t[8] - 1.0f32.sin()).abs() < 1e-7 && (t[9] - 0.01f32.sin()).abs() < 1e-7);
        assert!((t[8 + 2] - 1.0f32.cos()).abs() < 1e-7);
        assert!((t[8 + 4]).abs() < 1e-7 && (t[8 + 6] - 1.0).abs() < 1e-7);
        // Row 50 is cell (1, 0).
        assert!((t[50 * 8 + 4] - 1.0f32.sin()).abs() < 1e-7);
        let x = Tensor::arange(0f32, 2.0 * 5.0 * 5.0 * 3.0, &Device::Cpu).and_then(|t| t.reshape((2, 5, 5, 3))).expect("x");
        let p = adaptive_pool(&x, 2).expect("pool");
        assert_eq!(p.dims(), [2, 4, 3]);
        // Cell (0, 0) of a 5×5 map pooled to 2×2 spans rows and columns 0..3.
        let v = p.to_vec3::<f32>().expect("v");
        let want: f32 = (0..3).flat_map(|i| (0..3).map(move |j| ((i * 5 + j) * 3) as f32)).sum::<f32>() / 9.0;
        assert!((v[0][0][0] - want).abs() < 1e-5);
        assert_eq!(gguf_name("encoder.stages.2.layers.5.grn.bias").expect("name"), "v.stage.2.blk.5.grn.bias");
        assert_eq!(gguf_name("encoder.stages.1.downsampling_layer.1.weight").expect("name"), "v.stage.1.down.conv.weight");
    }
}
