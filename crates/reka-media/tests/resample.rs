//! The resampler keeps a tone's frequency and amplitude and removes what would alias.

#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

use std::f64::consts::PI;

use reka_media::resample;

fn sine(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| (2.0 * PI * freq * i as f64 / f64::from(rate)).sin() as f32 * 0.5)
        .collect()
}

/// Amplitude and phase-free error of `x` against `0.5·sin(2π·freq·t)` on the middle half
/// (away from the zero-padded ends): fit a·sin + b·cos by least squares.
fn fit(x: &[f32], freq: f64, rate: u32) -> (f64, f64) {
    let (lo, hi) = (x.len() / 4, 3 * x.len() / 4);
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate().take(hi).skip(lo) {
        let t = 2.0 * PI * freq * i as f64 / f64::from(rate);
        let (s, c, v) = (t.sin(), t.cos(), f64::from(v));
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let amp = (a * a + b * b).sqrt();
    let resid = x[lo..hi]
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let t = 2.0 * PI * freq * (k + lo) as f64 / f64::from(rate);
            (f64::from(v) - a * t.sin() - b * t.cos()).abs()
        })
        .fold(0.0, f64::max);
    (amp, resid)
}

/// Tolerance: amplitude within 0.1 % (the passband ripple of a Kaiser β≈14.8 filter is
/// far smaller) and every sample within 1e-4 of the fitted 1 kHz sine (f32 rounding
/// over ~370 taps is ~1e-6; any frequency error would show as a drifting residual).
fn check_tone(from: u32, to: u32) {
    let x = sine(1000.0, from, 1.0);
    let y = resample(&x, from, to);
    assert_eq!(
        y.len(),
        (x.len() as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize
    );
    let (amp, resid) = fit(&y, 1000.0, to);
    println!("{from} -> {to}: amplitude {amp:.6} (want 0.5), max residual {resid:e}");
    assert!((amp - 0.5).abs() < 5e-4, "amplitude {amp}");
    assert!(resid < 1e-4, "residual {resid}");
}

#[test]
fn sine_44k1_to_16k_keeps_frequency_and_amplitude() {
    check_tone(44_100, 16_000);
}

#[test]
fn sine_48k_to_16k_keeps_frequency_and_amplitude() {
    check_tone(48_000, 16_000);
}

#[test]
fn upsampling_8k_to_16k_and_an_awkward_ratio() {
    check_tone(8_000, 16_000);
    // 44 057 Hz: the reduced ratio needs 16 000 phases → the interpolated kernel path.
    check_tone(44_057, 16_000);
}

#[test]
fn identity_when_rates_match() {
    let x = sine(440.0, 16_000, 0.1);
    assert_eq!(resample(&x, 16_000, 16_000), x);
}

/// 12 kHz at 48 kHz would fold to 4 kHz at 16 kHz; the anti-aliasing filter must
/// remove it (RMS of the output below 1e-4 of the input's, i.e. −80 dB).
#[test]
fn downsampling_removes_what_would_alias() {
    let x = sine(12_000.0, 48_000, 1.0);
    let y = resample(&x, 48_000, 16_000);
    let mid = &y[y.len() / 4..3 * y.len() / 4];
    let rms = (mid.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
    println!("12 kHz tone after 48k -> 16k: rms {rms:e} (input 0.354)");
    assert!(rms < 0.354e-4, "rms {rms}");
}

/// Not a test of correctness: 30 s of 48 kHz audio → 16 kHz → log-mel.
/// `cargo test --release -p reka-media --test resample -- --ignored --nocapture`
#[test]
#[ignore]
fn timing_30_s() {
    let x = sine(440.0, 48_000, 30.0);
    let t = std::time::Instant::now();
    let y = resample(&x, 48_000, 16_000);
    let t1 = t.elapsed();
    let m = reka_media::log_mel(&y, 80);
    println!(
        "resample 30 s 48k→16k: {t1:?}; log_mel 30 s ({} frames): {:?}",
        m.frames,
        t.elapsed() - t1
    );
}

/// Any pair of rates costs work in proportion to the samples in and out, never to
/// the ratio: 4 KB of samples "at 4294967295 Hz" once needed a kernel table of
/// 2^33 entries, and 77 235 Hz (an exact table of 2^21 Bessel evaluations) cost
/// 0.25 s for any input. Each call here must finish in well under a second (each
/// takes a few milliseconds) and return `ceil(len·to/from)` samples.
#[test]
fn extreme_ratios_cost_little() {
    let x = sine(440.0, 16_000, 0.125);
    for (from, to) in [
        (u32::MAX, 16_000),
        (4_000_000_000, 16_000),
        (500_000_000, 16_000),
        (u32::MAX, 1),
        (u32::MAX - 1, u32::MAX),
        (16_001, 16_000),
        (999, 16_000),
        (77_235, 16_000),
    ] {
        let t = std::time::Instant::now();
        let y = resample(&x, from, to);
        let took = t.elapsed();
        assert_eq!(y.len() as u64, (x.len() as u64 * u64::from(to)).div_ceil(u64::from(from)), "{from} -> {to}");
        assert!(y.iter().all(|v| v.is_finite()), "{from} -> {to}");
        assert!(took.as_millis() < 1000, "{from} -> {to} took {took:?}");
    }
}
