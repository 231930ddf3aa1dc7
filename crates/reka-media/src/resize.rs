//! Resizing and normalisation. Resizing squashes the aspect ratio (no letterbox: every
//! output pixel carries image content) with a Catmull-Rom filter. A source more than
//! three times the target on a side is first shrunk by an integer box average (whole
//! `fx`×`fy` blocks, to no less than twice the target; the < `fx` leftover columns and
//! < `fy` leftover rows at the right and bottom edges, under half an output pixel, are
//! dropped), so a 4000×3000 photo costs little more than its decoding.

use ::image::imageops::{self, FilterType};
use ::image::RgbImage;

use crate::ImageSpec;

/// Resize `img` to exactly `w`×`h` (aspect squashed).
pub(crate) fn resize_exact(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (sw, sh) = img.dimensions();
    if (sw, sh) == (w, h) {
        return img.clone();
    }
    if sw > 3 * w || sh > 3 * h {
        let mid = prescale(img, w, h);
        return imageops::resize(&mid, w, h, FilterType::CatmullRom);
    }
    imageops::resize(img, w, h, FilterType::CatmullRom)
}

/// Cheap box-average shrink towards twice (`w`, `h`), never enlarging an axis.
pub(crate) fn prescale(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (sw, sh) = img.dimensions();
    let fx = (sw / w.saturating_mul(2).max(1)).max(1);
    let fy = (sh / h.saturating_mul(2).max(1)).max(1);
    if fx == 1 && fy == 1 {
        return img.clone();
    }
    box_shrink(img, fx, fy)
}

/// Average whole `fx`×`fy` blocks of `img` (leftover edge pixels are dropped).
fn box_shrink(img: &RgbImage, fx: u32, fy: u32) -> RgbImage {
    let (sw, sh) = img.dimensions();
    let (fx, fy) = (fx.min(sw).max(1), fy.min(sh).max(1));
    let (ow, oh) = (sw / fx, sh / fy);
    let (fxu, fyu, owu) = (fx as usize, fy as usize, ow as usize);
    let stride = sw as usize * 3;
    let raw = img.as_raw();
    let area = u64::from(fx) * u64::from(fy);
    let mut out = Vec::with_capacity(owu * oh as usize * 3);
    let mut acc = vec![0u64; owu * 3];
    for oy in 0..oh as usize {
        acc.iter_mut().for_each(|a| *a = 0);
        for y in oy * fyu..(oy + 1) * fyu {
            let row = &raw[y * stride..y * stride + owu * fxu * 3];
            for (block, a) in row.chunks_exact(fxu * 3).zip(acc.chunks_exact_mut(3)) {
                for px in block.chunks_exact(3) {
                    a[0] += u64::from(px[0]);
                    a[1] += u64::from(px[1]);
                    a[2] += u64::from(px[2]);
                }
            }
        }
        out.extend(acc.iter().map(|&a| ((a + area / 2) / area) as u8));
    }
    RgbImage::from_raw(ow, oh, out).unwrap_or_else(|| RgbImage::new(ow, oh))
}

/// Append `img` (already `size`×`size`) to `out` as normalised CHW:
/// `(x / 255 - mean[c]) / std[c]`.
pub(crate) fn push_chw(out: &mut Vec<f32>, img: &RgbImage, spec: &ImageSpec) {
    let raw = img.as_raw();
    for c in 0..3 {
        let scale = 1.0 / (255.0 * spec.std[c]);
        let shift = spec.mean[c] / spec.std[c];
        out.extend(
            raw.iter()
                .skip(c)
                .step_by(3)
                .map(|&v| f32::from(v) * scale - shift),
        );
    }
}

/// Append the `size`×`size` crop at tile (`col`, `row`) of `img` as normalised CHW.
pub(crate) fn push_tile_chw(
    out: &mut Vec<f32>,
    img: &RgbImage,
    col: u32,
    row: u32,
    spec: &ImageSpec,
) {
    let size = spec.size as usize;
    let stride = img.width() as usize * 3;
    let raw = img.as_raw();
    let (x0, y0) = (col as usize * size, row as usize * size);
    for c in 0..3 {
        let scale = 1.0 / (255.0 * spec.std[c]);
        let shift = spec.mean[c] / spec.std[c];
        for y in y0..y0 + size {
            let line = &raw[y * stride + x0 * 3..y * stride + (x0 + size) * 3];
            out.extend(
                line.iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&v| f32::from(v) * scale - shift),
            );
        }
    }
}
