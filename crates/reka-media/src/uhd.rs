//! Reka Edge's image tiling (LLaVA-UHD style) and video frames, as Reka's own
//! vLLM plugin prepares them (`vllm_reka`, commit c12e0d1):
//!
//! - `n = min(ceil(W·H / size²), max_tiles)`. With `n ≤ 1` the image is resized
//!   (Pillow bicubic) keeping its aspect to about `size²` pixels, sides rounded
//!   to a multiple of the patch size: one tile.
//! - Otherwise the grid `(cols, rows)` is the factor pair of `n` (and of `n + 1`
//!   when `n < max_tiles`) whose log-aspect is closest to the image's (the first
//!   in that order on ties); the image is resized (bicubic) so that each cell
//!   is about `size²` pixels, cut row-major, and the **whole original image**
//!   follows the cells as the last tile.
//! - Every tile, and every video frame, is then squashed to `size`×`size`
//!   (Pillow bilinear, transformers' `ConvNextImageProcessor` default), scaled by
//!   1/255 and normalised with the mean and std.
//! - Video: `frames` indices `floor(linspace(0, N − 1, frames))` when the video has
//!   more than `frames` frames, every frame otherwise (no repeats).
//!
//! Python's `round` (ties to even) and `int` (truncation) are reproduced.

use crate::decode::{decode_rgb, for_each_frame, is_animated, rgba_over_white, sniff};
use crate::pil::{resize, Filter};
use crate::{ImageSpec, Limits, MediaError, Pixels};
use ::image::{imageops, RgbImage};

/// How an image is cut: the sizes the plugin computes along the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UhdPlan {
    /// `(cols, rows)`; `None` for a single tile.
    pub grid: Option<(u32, u32)>,
    /// The bicubic resize before cutting (the single tile's size when `grid` is `None`).
    pub resized: (u32, u32),
    /// Tiles, the whole image included.
    pub tiles: u32,
}

/// `max(round(len / patch) · patch, patch)`, Python's `round`.
fn ensure_divides(len: f64, patch: u32) -> u32 {
    let p = f64::from(patch.max(1));
    ((len / p).round_ties_even() * p).max(p) as u32
}

/// An aspect-preserving size of about `size²` pixels, sides multiples of `patch`.
fn best_resize(w: u32, h: u32, size: u32, patch: u32) -> (u32, u32) {
    let aspect = f64::from(w) / f64::from(h);
    let new_h = (f64::from(size) / aspect.sqrt()).trunc();
    let new_w = (new_h * aspect).trunc();
    (ensure_divides(new_w, patch), ensure_divides(new_h, patch))
}

/// The factor pairs `(x, n / x)` of `n`, `x` ascending.
fn grids(n: u32) -> impl Iterator<Item = (u32, u32)> {
    (1..=n).filter(move |x| n.is_multiple_of(*x)).map(move |x| (x, n / x))
}

/// The plan for a `w`×`h` image.
pub fn plan(w: u32, h: u32, size: u32, patch: u32, max_tiles: u32) -> UhdPlan {
    let area = f64::from(w) * f64::from(h) / (f64::from(size) * f64::from(size));
    let n = (area.ceil() as u64).min(u64::from(max_tiles)) as u32;
    if n <= 1 {
        return UhdPlan { grid: None, resized: best_resize(w, h, size, patch), tiles: 1 };
    }
    let log_aspect = (f64::from(w) / f64::from(h)).ln();
    let extra = if n < max_tiles { Some(n + 1) } else { None };
    let mut best = (1, 1);
    let mut best_err = f64::INFINITY;
    for g in grids(n).chain(extra.into_iter().flat_map(grids)) {
        let err = (log_aspect - (f64::from(g.0) / f64::from(g.1)).ln()).abs();
        if err < best_err {
            (best, best_err) = (g, err);
        }
    }
    let (cols, rows) = best;
    let tile_w = ensure_divides(f64::from(w / cols), patch);
    let tile_h = ensure_divides(f64::from(h / rows), patch);
    let (bw, bh) = best_resize(tile_w, tile_h, size, patch);
    UhdPlan { grid: Some(best), resized: (bw * cols, bh * rows), tiles: cols * rows + 1 }
}

/// The tiles of `img` before the final squash: the grid's cells row-major, then
/// the whole image; or the one resized tile.
pub fn tiles(img: &RgbImage, size: u32, patch: u32, max_tiles: u32) -> Vec<RgbImage> {
    let p = plan(img.width(), img.height(), size, patch, max_tiles);
    let big = resize(img, p.resized.0, p.resized.1, Filter::Bicubic);
    let Some((cols, rows)) = p.grid else {
        return vec![big];
    };
    let (cw, ch) = (big.width() / cols, big.height() / rows);
    let mut out = Vec::with_capacity(p.tiles as usize);
    for r in 0..rows {
        for c in 0..cols {
            out.push(imageops::crop_imm(&big, c * cw, r * ch, cw, ch).to_image());
        }
    }
    out.push(img.clone());
    out
}

/// Squashes `tile` to `size`×`size` (bilinear) and appends it normalised, CHW,
/// as transformers computes it: `f32(v · (1/255))`, then `(x − mean) / std` in f32.
pub fn push_squashed(out: &mut Vec<f32>, tile: &RgbImage, spec: &ImageSpec) {
    let sq = resize(tile, spec.size, spec.size, Filter::Bilinear);
    let raw = sq.as_raw();
    for c in 0..3 {
        let (m, s) = (spec.mean[c], spec.std[c]);
        out.extend(raw.iter().skip(c).step_by(3).map(|&v| ((f64::from(v) * (1.0 / 255.0)) as f32 - m) / s));
    }
}

fn pixels(data: Vec<f32>, n: usize, size: u32) -> Pixels {
    Pixels { data, n, h: size as usize, w: size as usize }
}

/// An image's tiles, normalised: `n = plan(..).tiles` tiles of `size`×`size`.
pub fn image_tiles(bytes: &[u8], spec: &ImageSpec, patch: u32, limits: &Limits) -> Result<Pixels, MediaError> {
    if spec.size == 0 || patch == 0 {
        return Err(MediaError::InvalidSpec("the tile or patch size is 0"));
    }
    let img = decode_rgb(bytes, limits)?;
    let ts = tiles(&img, spec.size, patch, spec.max_tiles.max(1));
    let mut data = Vec::with_capacity(ts.len() * 3 * (spec.size as usize).pow(2));
    for t in &ts {
        push_squashed(&mut data, t, spec);
    }
    Ok(pixels(data, ts.len(), spec.size))
}

/// The frames a video of `n` frames keeps: `floor(linspace(0, n − 1, frames))`
/// (NumPy's, last exactly `n − 1`) when `n > frames`, else all of them.
pub fn frame_indices(n: usize, frames: usize) -> Vec<usize> {
    if n <= frames {
        return (0..n).collect();
    }
    if frames <= 1 {
        return vec![0; frames];
    }
    let step = (n - 1) as f64 / (frames - 1) as f64;
    let mut v: Vec<usize> = (0..frames).map(|i| (i as f64 * step).floor() as usize).collect();
    v[frames - 1] = n - 1;
    v
}

/// A video's frames (an animated GIF / WebP, or a still image as one frame),
/// sampled with [`frame_indices`], each one squashed tile.
pub fn video_frames(bytes: &[u8], frames: usize, spec: &ImageSpec, limits: &Limits) -> Result<Pixels, MediaError> {
    let format = sniff(bytes, limits)?;
    if !is_animated(bytes, format) {
        return video_from_images(&[bytes], frames, spec, limits);
    }
    if frames == 0 {
        return Err(MediaError::ZeroFramesRequested);
    }
    let n = for_each_frame(bytes, format, limits, |_, _| Ok(()))?;
    let keep = frame_indices(n, frames);
    if keep.is_empty() {
        return Err(MediaError::NoFrames);
    }
    let mut data = Vec::new();
    for_each_frame(bytes, format, limits, |i, frame| {
        if keep.binary_search(&i).is_ok() {
            push_squashed(&mut data, &rgba_over_white(frame), spec);
        }
        Ok(())
    })?;
    Ok(pixels(data, keep.len(), spec.size))
}

/// A video given as still frames, sampled with [`frame_indices`].
pub fn video_from_images(images: &[&[u8]], frames: usize, spec: &ImageSpec, limits: &Limits) -> Result<Pixels, MediaError> {
    if frames == 0 {
        return Err(MediaError::ZeroFramesRequested);
    }
    if images.is_empty() {
        return Err(MediaError::NoFrames);
    }
    if images.len() > limits.max_frames {
        return Err(MediaError::TooManyFrames { max: limits.max_frames });
    }
    limits.check_bytes(images.iter().map(|b| b.len()).sum())?;
    let keep = frame_indices(images.len(), frames);
    let mut data = Vec::new();
    for &i in &keep {
        push_squashed(&mut data, &decode_rgb(images[i], limits)?, spec);
    }
    Ok(pixels(data, keep.len(), spec.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding_and_truncation() {
        assert_eq!(ensure_divides(2.0, 4), 4); // round(0.5) = 0, then the floor of one patch
        assert_eq!(ensure_divides(6.0, 4), 8); // round(1.5) = 2
        assert_eq!(ensure_divides(10.0, 4), 8); // round(2.5) = 2
        assert_eq!(best_resize(300, 200, 512, 4), (628, 416));
    }

    #[test]
    fn single_and_multi_tile_plans() {
        let one = plan(300, 200, 512, 4, 4);
        assert_eq!((one.grid, one.tiles), (None, 1));
        // 2000×150: 2 tiles by area; grids of 2 and 3 are candidates; 3×1 is the closest aspect.
        let wide = plan(2000, 150, 512, 4, 4);
        assert_eq!((wide.grid, wide.tiles), (Some((3, 1)), 4));
        assert_eq!(frame_indices(10, 4), vec![0, 3, 6, 9]);
        assert_eq!(frame_indices(3, 6), vec![0, 1, 2]);
        assert_eq!(frame_indices(7, 1), vec![0]);
    }
}
