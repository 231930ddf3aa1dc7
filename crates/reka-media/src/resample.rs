//! Band-limited resampling: a Kaiser-windowed sinc, with the parameters of resampy's
//! `kaiser_best` filter (64 zero crossings, roll-off 0.9475937, β = 14.769656). When
//! downsampling, the cutoff moves down to the output's Nyquist frequency (times the
//! roll-off), which is the anti-aliasing filter. The signal is zero outside its ends.
//!
//! For a ratio `to/from = L/M` (reduced) with `L` small enough, the `L` filter phases are
//! tabulated exactly (polyphase); for awkward ratios the kernel is tabulated finely and
//! interpolated linearly instead.
//!
//! The cost is bounded for any pair of rates: the polyphase table holds at most
//! [`MAX_TABLE`] coefficients (and is built only when there are outputs for all
//! its phases), the fine table has a fixed size (512 points per zero
//! crossing, as resampy tabulates it, whatever the ratio), and each output sample
//! visits only the taps that fall on the signal. So the work is
//! `O(MAX_TABLE + 135·max(len_in, len_out))` and the memory `O(len_in + len_out)`,
//! even for a header that claims 4294967295 Hz.

use std::f64::consts::PI;

const ZEROS: f64 = 64.0;
const ROLLOFF: f64 = 0.947_593_7;
const BETA: f64 = 14.769_656;
/// Most coefficients of a polyphase table before falling back to interpolation.
/// Each costs a Bessel series (~100 ns natively): 2^16 of them keep the table
/// under ~10 ms, where 2^21 cost 0.25 s for a 4-sample file at 77 235 Hz.
const MAX_TABLE: usize = 1 << 16;
/// Kernel samples per zero crossing in the interpolated fallback.
const FINE: usize = 512;

/// The zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// The filter: `fc·sinc(fc·t)·kaiser(t / half)`, `t` in input samples.
struct Kernel {
    fc: f64,
    half: f64,
    norm: f64,
}

impl Kernel {
    fn new(from: u32, to: u32) -> Kernel {
        let fc = ROLLOFF * (f64::from(to) / f64::from(from)).min(1.0);
        Kernel {
            fc,
            half: ZEROS / fc,
            norm: 1.0 / bessel_i0(BETA),
        }
    }

    fn at(&self, t: f64) -> f64 {
        let r = t / self.half;
        if r.abs() >= 1.0 {
            return 0.0;
        }
        let x = PI * self.fc * t;
        let sinc = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
        self.fc * sinc * bessel_i0(BETA * (1.0 - r * r).sqrt()) * self.norm
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Resample `samples` from `from` Hz to `to` Hz; `ceil(len·to/from)` samples come back.
/// `from == to` (or a zero rate) returns the input unchanged.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || from == 0 || to == 0 || samples.is_empty() {
        return samples.to_vec();
    }
    let g = gcd(u64::from(from), u64::from(to));
    let (l, m) = (u64::from(to) / g, u64::from(from) / g);
    let n_out = (samples.len() as u64 * l).div_ceil(m) as usize;
    let kernel = Kernel::new(from, to);
    // Taps k - half..=k + half around the output's position in input samples; at
    // most 2·64·2^32 / 0.95 of them, which fits an i64 whatever the rates.
    let reach = kernel.half.ceil() as i64;
    let taps = 2 * reach as u64 + 1;
    // The exact table only pays off when every phase is used, i.e. at least `l`
    // outputs; otherwise the fixed-size interpolated table is cheaper.
    if l.saturating_mul(taps) <= MAX_TABLE as u64 && l <= n_out as u64 {
        polyphase(samples, &kernel, l, m, reach, n_out)
    } else {
        interpolated(samples, &kernel, l, m, reach, n_out)
    }
}
/// Dot product of `table` (weights for inputs `start..start+len`) with the samples,
/// skipping inputs outside the signal.
fn dot(samples: &[f32], start: i64, weights: &[f32]) -> f32 {
    let n = samples.len() as i64;
    let lo = (-start).clamp(0, weights.len() as i64) as usize;
    let hi = (n - start).clamp(0, weights.len() as i64) as usize;
    if lo >= hi {
        return 0.0;
    }
    let s0 = (start + lo as i64) as usize;
    let xs = &samples[s0..s0 + (hi - lo)];
    let ws = &weights[lo..hi];
    // Eight independent sums let the compiler vectorise (float addition is not
    // associative, so a single running sum cannot be).
    let mut acc = [0f32; 8];
    let (wc, xc) = (ws.chunks_exact(8), xs.chunks_exact(8));
    let tail: f32 = wc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .map(|(w, x)| w * x)
        .sum();
    for (w8, x8) in wc.zip(xc) {
        for k in 0..8 {
            acc[k] += w8[k] * x8[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn polyphase(samples: &[f32], k: &Kernel, l: u64, m: u64, reach: i64, n_out: usize) -> Vec<f32> {
    let taps = (2 * reach + 1) as usize;
    // Phase p: the output sits p/l of an input sample after an input sample `base`;
    // weight j applies to input base - reach + j.
    let mut table = vec![0f32; l as usize * taps];
    for (p, row) in table.chunks_exact_mut(taps).enumerate() {
        let frac = p as f64 / l as f64;
        for (j, w) in row.iter_mut().enumerate() {
            *w = k.at((j as i64 - reach) as f64 - frac) as f32;
        }
    }
    (0..n_out as u64)
        .map(|i| {
            let pos = i * m;
            let (base, phase) = ((pos / l) as i64, (pos % l) as usize);
            dot(
                samples,
                base - reach,
                &table[phase * taps..(phase + 1) * taps],
            )
        })
        .collect()
}

/// Awkward ratios: the kernel tabulated over `u = fc·t` (in zero crossings), so the
/// table's size does not depend on the rates, and interpolated linearly. Only the
/// taps that fall on the signal are computed.
fn interpolated(samples: &[f32], k: &Kernel, l: u64, m: u64, reach: i64, n_out: usize) -> Vec<f32> {
    let len = ZEROS as usize * FINE + 2;
    let fine: Vec<f64> = (0..len).map(|i| k.at(i as f64 / FINE as f64 / k.fc)).collect();
    let n = samples.len() as i64;
    let mut weights = Vec::new();
    (0..n_out as u64)
        .map(|i| {
            // i·m < (len·l/m + 1)·m, which fits a u128 whatever the rates.
            let pos = u128::from(i) * u128::from(m);
            let base = (pos / u128::from(l)) as i64;
            let frac = (pos % u128::from(l)) as f64 / l as f64;
            let start = (base - reach).max(0);
            let end = (base + reach).min(n - 1);
            if start > end {
                return 0.0;
            }
            weights.clear();
            weights.extend((start..=end).map(|s| {
                let u = ((s - base) as f64 - frac).abs() * k.fc * FINE as f64;
                let (ui, uf) = (u as usize, u.fract());
                match (fine.get(ui), fine.get(ui + 1)) {
                    (Some(a), Some(b)) => (a + (b - a) * uf) as f32,
                    _ => 0.0,
                }
            }));
            dot(samples, start, &weights)
        })
        .collect()
}
