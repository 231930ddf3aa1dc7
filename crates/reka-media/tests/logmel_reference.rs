//! Our log-mel against an independent implementation (transformers'
//! `WhisperFeatureExtractor`, numpy, float64) on real synthesised speech; see
//! `tests/fixtures/logmel/README.md` for where the audio and the reference come from.

#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

use std::path::PathBuf;

use reka_media::{audio_features, Limits};

fn fixture(name: &str) -> Vec<u8> {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "tests",
        "fixtures",
        "logmel",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// (n_mels, frames, data) of a reference mel.
fn reference(stem: &str) -> (usize, usize, Vec<f32>) {
    let json = String::from_utf8(fixture(&format!("{stem}.json"))).expect("utf-8");
    let field = |key: &str| -> usize {
        let at = json.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
        let digits: String = json[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().expect("a number")
    };
    let data: Vec<f32> = fixture(&format!("{stem}.f32"))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (field("n_mels"), field("frames"), data)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The same 16 kHz samples through both implementations. Both compute in float64 and
/// store float32 (values are O(1), one f32 ulp is ~1.2e-7), so they should agree to a few
/// ulps; 1e-5 leaves room for a different FFT while catching any real mistake (a wrong
/// window, padding or filterbank moves values by > 1e-2). Measured: 1.2e-7.
#[test]
fn log_mel_matches_whisper_feature_extractor() {
    let (n_mels, frames, want) = reference("mel_16k");
    let got = audio_features(&fixture("speech_16k.wav"), n_mels, &Limits::default()).unwrap();
    assert_eq!((got.n_mels, got.frames), (n_mels, frames));
    let d = max_abs_diff(&got.data, &want);
    println!("16 kHz log-mel: max |Δ| = {d:e} over {n_mels}×{frames}");
    assert!(d <= 1e-5, "max |Δ| = {d}");
}

/// 22.05 kHz speech through our resampler (Kaiser-windowed sinc, cutoff 0.948 × 8 kHz)
/// against soxr's "HQ" resampler feeding the reference. The two filters roll off
/// differently in the last few hundred Hz below 8 kHz, which only the top two mel bins
/// (78 and 79, upper edges 7.7 and 8 kHz) see. Bounds, on the normalised scale where
/// 0.1 = 0.4 in log10 = 4 dB: bins 0..78 max |Δ| ≤ 0.02 (measured 0.0075, in bin 77),
/// all bins ≤ 0.2 (measured 0.099, in bin 79), mean |Δ| ≤ 5e-3 (measured 9.2e-4).
#[test]
fn resampled_log_mel_is_close_to_soxr_reference() {
    let (n_mels, frames, want) = reference("mel_22k");
    let got = audio_features(&fixture("speech_22k.wav"), n_mels, &Limits::default()).unwrap();
    assert_eq!((got.n_mels, got.frames), (n_mels, frames));
    let low = 78 * frames;
    let d_low = max_abs_diff(&got.data[..low], &want[..low]);
    let d = max_abs_diff(&got.data, &want);
    let mean = got
        .data
        .iter()
        .zip(&want)
        .map(|(x, y)| (x - y).abs())
        .sum::<f32>()
        / want.len() as f32;
    println!(
        "22.05 kHz -> 16 kHz log-mel: max |Δ| bins 0..78 = {d_low:e}, all bins = {d:e}, mean = {mean:e}"
    );
    assert!(d_low <= 0.02, "bins 0..78: max |Δ| = {d_low}");
    assert!(d <= 0.2 && mean <= 5e-3, "max |Δ| = {d}, mean |Δ| = {mean}");
}
