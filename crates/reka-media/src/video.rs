//! Video → frames. The frames of an animated GIF or WebP (fully composited by `image`'s
//! animation decoders) or a list of still images are sampled uniformly:
//! `index_i = round(i·(N−1)/(frames−1))` with ties to even, as
//! `np.round(np.linspace(0, N-1, frames))` does. Exactly `frames` frames always come
//! back: when the video has fewer than `frames` frames some repeat. Each sampled frame is
//! resized whole to `size`×`size` (no tiles). A still image is a one-frame video.
//!
//! Animations are decoded twice (once to count, once to keep the sampled frames), so
//! memory stays at one full frame plus the sampled tiles whatever the length.

use crate::decode::{decode_rgb, for_each_frame, is_animated, rgba_over_white, sniff};
use crate::resize::{push_chw, resize_exact};
use crate::{ImageSpec, Limits, MediaError, Pixels};

/// The `frames` indices into `n` frames sampled uniformly (see the module doc).
pub fn sample_indices(n: usize, frames: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    if frames <= 1 {
        return vec![0; frames];
    }
    let (span, den) = (n - 1, frames - 1);
    (0..frames)
        .map(|i| {
            let num = i * span;
            let (q, r) = (num / den, num % den);
            match (2 * r).cmp(&den) {
                std::cmp::Ordering::Less => q,
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal => q + (q & 1),
            }
        })
        .collect()
}

fn check_request(frames: usize, spec: &ImageSpec) -> Result<(), MediaError> {
    if frames == 0 {
        return Err(MediaError::ZeroFramesRequested);
    }
    if spec.size == 0 {
        return Err(MediaError::InvalidSpec("the tile size is 0"));
    }
    Ok(())
}

/// Lay the decoded `tiles` out as [`Pixels`] in the order of `indices`, repeating tiles
/// for repeated indices.
fn assemble(tiles: &[(usize, Vec<f32>)], indices: &[usize], spec: &ImageSpec) -> Pixels {
    let side = spec.size as usize;
    let mut data = Vec::with_capacity(indices.len() * 3 * side * side);
    for &i in indices {
        if let Some((_, t)) = tiles.iter().find(|(j, _)| *j == i) {
            data.extend_from_slice(t);
        }
    }
    Pixels {
        data,
        n: indices.len(),
        h: side,
        w: side,
    }
}

fn tile_of(img: &::image::RgbImage, spec: &ImageSpec) -> Vec<f32> {
    let mut t = Vec::new();
    push_chw(&mut t, &resize_exact(img, spec.size, spec.size), spec);
    t
}

/// Sample `frames` frames of an animated GIF/WebP (or a still image, repeated).
pub fn video_frames(
    bytes: &[u8],
    frames: usize,
    spec: &ImageSpec,
    limits: &Limits,
) -> Result<Pixels, MediaError> {
    check_request(frames, spec)?;
    let format = sniff(bytes, limits)?;
    if !is_animated(bytes, format) {
        let tile = tile_of(&decode_rgb(bytes, limits)?, spec);
        return Ok(assemble(&[(0, tile)], &vec![0; frames], spec));
    }
    let n = for_each_frame(bytes, format, limits, |_, _| Ok(()))?;
    if n == 0 {
        return Err(MediaError::NoFrames);
    }
    let indices = sample_indices(n, frames);
    let mut tiles: Vec<(usize, Vec<f32>)> = Vec::new();
    for_each_frame(bytes, format, limits, |i, frame| {
        if indices.binary_search(&i).is_ok() {
            tiles.push((i, tile_of(&rgba_over_white(frame), spec)));
        }
        Ok(())
    })?;
    Ok(assemble(&tiles, &indices, spec))
}

/// Sample `frames` frames from a list of still images (each decoded only if sampled).
pub fn video_from_images(
    images: &[&[u8]],
    frames: usize,
    spec: &ImageSpec,
    limits: &Limits,
) -> Result<Pixels, MediaError> {
    check_request(frames, spec)?;
    if images.is_empty() {
        return Err(MediaError::NoFrames);
    }
    if images.len() > limits.max_frames {
        return Err(MediaError::TooManyFrames {
            max: limits.max_frames,
        });
    }
    limits.check_bytes(images.iter().map(|b| b.len()).sum())?;
    let indices = sample_indices(images.len(), frames);
    let mut tiles: Vec<(usize, Vec<f32>)> = Vec::new();
    for &i in &indices {
        if tiles.last().is_some_and(|(j, _)| *j == i) {
            continue;
        }
        tiles.push((i, tile_of(&decode_rgb(images[i], limits)?, spec)));
    }
    Ok(assemble(&tiles, &indices, spec))
}
