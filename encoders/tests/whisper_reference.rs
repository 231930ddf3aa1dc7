//! The Whisper tiny.en encoder against ctranslate2's own encoder output for a
//! fixed log-mel (tests/fixtures/whisper, made by make_reference.py there).

mod common;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use reka_encoders::whisper::{WhisperEncoder, WhisperEncoderConfig};

const MEL_BINS: usize = 80;
const FRAMES: usize = 3000;
const WIDTH: usize = 384;
const TOLERANCE: f32 = 1e-2;

fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/whisper").join(file)
}

fn read_f32(file: &str, len: usize) -> Vec<f32> {
    let path = fixture(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), 4 * len, "{}: size", path.display());
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// The fixture's log-mel, first `frames` frames, as `[1, 80, frames]`.
fn mel(frames: usize) -> Tensor {
    let full = read_f32("mel_80x3000.bin", MEL_BINS * FRAMES);
    let mel = Tensor::from_vec(full, (1, MEL_BINS, FRAMES), &Device::Cpu).expect("mel tensor");
    mel.narrow(2, 0, frames).and_then(|m| m.contiguous()).expect("mel slice")
}

/// Compares the first `head` and last `tail` output rows (what the fixture
/// keeps) and returns the largest absolute difference.
fn max_diff(ours: &Tensor, file: &str, head: usize, tail: usize) -> f32 {
    let rows = ours.dim(1).expect("rows");
    let want = read_f32(file, (head + tail) * WIDTH);
    let got: Vec<Vec<f32>> = ours.squeeze(0).and_then(|t| t.to_vec2()).expect("output to vec");
    let picked = got[..head].iter().chain(&got[rows - tail..]).flatten();
    picked.zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

fn encoder() -> WhisperEncoder {
    WhisperEncoder::from_ct2(&common::cached("whisper-tiny-en-ct2.bin")).expect("loading the Whisper encoder")
}

#[test]
fn config_comes_from_the_weights() {
    let want = WhisperEncoderConfig { width: 384, layers: 4, heads: 6, mel_bins: 80, max_positions: 1500 };
    assert_eq!(encoder().config(), want);
}

#[test]
fn full_30s_input_matches_ctranslate2() {
    let enc = encoder();
    let mel = mel(FRAMES);
    let out = enc.forward(&mel).expect("forward");
    // Timing only (the machine is shared): the fastest of three more runs.
    let elapsed = (0..3)
        .map(|_| {
            let start = Instant::now();
            enc.forward(&mel).expect("timed forward");
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    assert_eq!(out.dims(), &[1, FRAMES / 2, WIDTH]);
    let diff = max_diff(&out, "out_3000.bin", 300, 50);
    println!("3000 frames: max |Δ| vs ctranslate2 = {diff:e}, forward {elapsed:?} (best of 3)");
    assert!(diff <= TOLERANCE, "max |Δ| {diff} > {TOLERANCE}");
}

#[test]
fn shorter_input_matches_ctranslate2() {
    let enc = encoder();
    let out = enc.forward(&mel(1000)).expect("forward");
    assert_eq!(out.dims(), &[1, 500, WIDTH]);
    let diff = max_diff(&out, "out_1000.bin", 200, 50);
    println!("1000 frames: max |Δ| vs ctranslate2 = {diff:e}");
    assert!(diff <= TOLERANCE, "max |Δ| {diff} > {TOLERANCE}");
}

#[test]
fn batch_of_two_gives_each_row_its_own_answer() {
    let enc = encoder();
    let a = mel(1000);
    let b = mel(2000).narrow(2, 1000, 1000).and_then(|m| m.contiguous()).expect("second slice");
    let batch = Tensor::cat(&[&a, &b], 0).expect("batch");
    let both = enc.forward(&batch).expect("batched forward");
    for (i, single) in [a, b].iter().enumerate() {
        let alone = enc.forward(single).expect("single forward");
        let row = both.narrow(0, i, 1).expect("row");
        let diff: f32 = (row - alone).and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar()).expect("diff");
        assert!(diff < 1e-4, "batch row {i} differs from its single run by {diff}");
    }
}

#[test]
fn refuses_bad_shapes() {
    let enc = encoder();
    for dims in [(1, 80, 999), (1, 80, 3002), (1, 64, 1000)] {
        let x = Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu).expect("zeros");
        assert!(enc.forward(&x).is_err(), "{dims:?} must be refused");
    }
}
