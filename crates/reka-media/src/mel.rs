//! Whisper's log-mel spectrogram, step for step as `whisper.audio.log_mel_spectrogram`
//! computes it: n_fft 400, hop 160, periodic Hann window, centred STFT with reflect
//! padding, power spectrum, the last frame dropped (`stft[..., :-1]`), a Slaney-style mel
//! filterbank over 0–8000 Hz with Slaney area normalisation (librosa's `filters.mel`
//! defaults: `htk=False, norm="slaney"`), `log10(max(x, 1e-10))`, then
//! `max(x, max(x) - 8)` and `(x + 4) / 4`. No padding to 30 s: `frames = len / 160`.
//! The arithmetic is done in `f64` and stored as `f32`.

use std::f64::consts::PI;

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

use crate::SAMPLE_RATE;

/// STFT window and FFT length (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// STFT hop (10 ms at 16 kHz).
pub const HOP_LENGTH: usize = 160;

/// A log-mel spectrogram, `[n_mels, frames]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Mel {
    pub data: Vec<f32>,
    pub n_mels: usize,
    pub frames: usize,
}

/// Hz → mel on the Slaney scale (linear below 1 kHz, logarithmic above).
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_hz / f_sp + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// One triangular filter: its first FFT bin and its weights from there on.
struct Filter {
    start: usize,
    weights: Vec<f64>,
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels, fmin=0, fmax=8000)`.
fn filterbank(n_mels: usize) -> Vec<Filter> {
    let bins = N_FFT / 2 + 1;
    let fmax = f64::from(SAMPLE_RATE) / 2.0;
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(fmax));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let fft_f: Vec<f64> = (0..bins)
        .map(|k| fmax * k as f64 / (bins - 1) as f64)
        .collect();
    (0..n_mels)
        .map(|i| {
            let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
            let enorm = 2.0 / (f2 - f0);
            let w: Vec<f64> = fft_f
                .iter()
                .map(|&f| {
                    let lower = (f - f0) / (f1 - f0);
                    let upper = (f2 - f) / (f2 - f1);
                    lower.min(upper).max(0.0) * enorm
                })
                .collect();
            let start = w.iter().position(|&x| x > 0.0).unwrap_or(bins);
            let end = w.iter().rposition(|&x| x > 0.0).map_or(start, |e| e + 1);
            Filter {
                start,
                weights: w[start..end].to_vec(),
            }
        })
        .collect()
}

/// Index into a signal of length `n` reflected at both ends without repeating the edge
/// sample (numpy's `reflect`), for any `i`.
fn reflect(i: i64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let j = i.rem_euclid(period);
    (if j >= n as i64 { period - j } else { j }) as usize
}

/// The Whisper log-mel spectrogram of 16 kHz mono samples (`frames = len / 160`).
pub fn log_mel(samples_16k: &[f32], n_mels: usize) -> Mel {
    let frames = samples_16k.len() / HOP_LENGTH;
    if frames == 0 || n_mels == 0 {
        return Mel {
            data: Vec::new(),
            n_mels,
            frames: 0,
        };
    }
    let n = samples_16k.len();
    let window: Vec<f64> = (0..N_FFT)
        .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / N_FFT as f64).cos())
        .collect();
    let fft = FftPlanner::<f64>::new().plan_fft_forward(N_FFT);
    let mut scratch = vec![Complex::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    let mut buf = vec![Complex::new(0.0, 0.0); N_FFT];
    let mut power = vec![0f64; N_FFT / 2 + 1];
    let filters = filterbank(n_mels);
    let mut logs = vec![0f64; n_mels * frames];
    let half = (N_FFT / 2) as i64;
    for t in 0..frames {
        let start = (t * HOP_LENGTH) as i64 - half;
        for (j, (b, w)) in buf.iter_mut().zip(&window).enumerate() {
            let i = start + j as i64;
            let x = if i >= 0 && (i as usize) < n {
                samples_16k[i as usize]
            } else {
                samples_16k[reflect(i, n)]
            };
            *b = Complex::new(f64::from(x) * w, 0.0);
        }
        fft.process_with_scratch(&mut buf, &mut scratch);
        for (p, c) in power.iter_mut().zip(&buf) {
            *p = c.norm_sqr();
        }
        for (m, f) in filters.iter().enumerate() {
            let e: f64 = f
                .weights
                .iter()
                .zip(&power[f.start..])
                .map(|(w, p)| w * p)
                .sum();
            logs[m * frames + t] = e.max(1e-10).log10();
        }
    }
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let data = logs
        .iter()
        .map(|&x| ((x.max(top - 8.0) + 4.0) / 4.0) as f32)
        .collect();
    Mel {
        data,
        n_mels,
        frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(200.0) - 3.0).abs() < 1e-12);
        for hz in [0.0, 300.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
    }

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([0,1,2,3], 3, 'reflect') = [3,2,1,0,1,2,3,2,1,0]
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn frame_count_and_short_input() {
        assert_eq!(log_mel(&vec![0.1; 16_000], 80).frames, 100);
        assert_eq!(log_mel(&[0.0; 159], 80).frames, 0);
        let m = log_mel(&[0.5; 170], 80);
        assert_eq!((m.frames, m.data.len()), (1, 80));
    }
}
