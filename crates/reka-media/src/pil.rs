//! Resampling that gives Pillow's bytes: `Image.resize(size, BICUBIC | BILINEAR)`
//! on an 8-bit RGB image, as Reka's own preprocessing runs it.
//!
//! Pillow resamples separably, horizontal pass first (into an 8-bit image),
//! then vertical. Each output sample's filter is centred on the source position
//! `(x + 0.5) · scale`; when shrinking, the filter is stretched by the scale
//! (antialiasing). The weights are normalised in f64 and rounded to 22-bit
//! fixed point; sums start at half an output step and are clipped to 0..=255.
//! Both passes are integer arithmetic, so equal inputs give equal bytes.

use ::image::RgbImage;

/// A resampling filter of Pillow's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Triangle, support 1 (`Image.BILINEAR`).
    Bilinear,
    /// Keys cubic with a = −0.5, support 2 (`Image.BICUBIC`).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fixed-point precision of the weights (Pillow's for 8-bit images).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output sample of one axis: the first source index and its
/// fixed-point weights.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn taps(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let (mut first, mut weights) = (Vec::with_capacity(out_size), Vec::with_capacity(out_size));
    for x in 0..out_size {
        let center = (x as f64 + 0.5) * scale;
        // C's (int) truncates toward zero; the bounds are clamped to the image.
        let min = ((center - support + 0.5) as i64).max(0) as usize;
        let max = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
        let w: Vec<f64> = (min..max).map(|i| filter.weight((i as f64 - center + 0.5) / filter_scale)).collect();
        let total: f64 = w.iter().sum();
        let fixed = w
            .iter()
            .map(|&v| {
                let v = if total != 0.0 { v / total } else { v };
                let f = v * f64::from(1u32 << PRECISION_BITS);
                (if f < 0.0 { f - 0.5 } else { f + 0.5 }) as i32
            })
            .collect();
        first.push(min);
        weights.push(fixed);
    }
    Taps { first, weights }
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One pass over `src` (`w`×`h`, RGB): along x when `horizontal`, else along y.
fn pass(src: &[u8], w: usize, h: usize, out_len: usize, horizontal: bool, filter: Filter) -> Vec<u8> {
    let t = taps(if horizontal { w } else { h }, out_len, filter);
    let (ow, oh) = if horizontal { (out_len, h) } else { (w, out_len) };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (o, k) = if horizontal { (x, y) } else { (y, x) };
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (j, &wt) in t.weights[o].iter().enumerate() {
                let i = t.first[o] + j;
                let p = if horizontal { (k * w + i) * 3 } else { (i * w + k) * 3 };
                for c in 0..3 {
                    acc[c] += i64::from(src[p + c]) * i64::from(wt);
                }
            }
            let q = (y * ow + x) * 3;
            for c in 0..3 {
                out[q + c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// `img` resized to `w`×`h` as Pillow's `Image.resize((w, h), filter)` does.
/// A size equal to the image's is a copy, as in Pillow.
pub fn resize(img: &RgbImage, w: u32, h: u32, filter: Filter) -> RgbImage {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let (w, h) = (w.max(1) as usize, h.max(1) as usize);
    let mut data = img.as_raw().clone();
    let mut cur_w = sw;
    if w != sw {
        data = pass(&data, sw, sh, w, true, filter);
        cur_w = w;
    }
    if h != sh {
        data = pass(&data, cur_w, sh, h, false, filter);
    }
    RgbImage::from_raw(w as u32, h as u32, data).unwrap_or_else(|| RgbImage::new(w as u32, h as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(300, 512), (512, 300), (7, 3), (1000, 512), (20, 512)] {
            for f in [Filter::Bilinear, Filter::Bicubic] {
                let t = taps(i, o, f);
                for w in &t.weights {
                    let s: i64 = w.iter().map(|&v| i64::from(v)).sum();
                    assert!((s - (1 << PRECISION_BITS)).abs() <= w.len() as i64, "{i}->{o} {f:?}: {s}");
                }
            }
        }
    }

    #[test]
    fn flat_images_stay_flat_and_same_size_is_a_copy() {
        let img = RgbImage::from_pixel(37, 23, ::image::Rgb([200, 10, 99]));
        for f in [Filter::Bilinear, Filter::Bicubic] {
            let r = resize(&img, 512, 300, f);
            assert!(r.pixels().all(|p| p.0 == [200, 10, 99]), "{f:?}");
            let r = resize(&img, 5, 4, f);
            assert!(r.pixels().all(|p| p.0 == [200, 10, 99]), "{f:?}");
        }
        let noisy = RgbImage::from_fn(9, 9, |x, y| ::image::Rgb([(x * 29 + y * 7) as u8, 3, 250]));
        assert_eq!(resize(&noisy, 9, 9, Filter::Bicubic), noisy);
    }
}
