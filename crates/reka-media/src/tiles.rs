//! Image → tiles. Tile 0 is the whole image resized to `size`×`size` (aspect ratio
//! squashed, not letterboxed). If the image is larger than `size` on a side and
//! `max_tiles >= 2`, a grid follows: the (cols, rows) with `2 <= cols*rows <= max_tiles`
//! whose aspect ratio is closest to the image's (in log space); the image is resized to
//! (cols·size, rows·size) and cut row-major (left to right, top to bottom). A 1×1 grid
//! would repeat tile 0, so it is never chosen.

use crate::decode::decode_rgb;
use crate::resize::{prescale, push_chw, push_tile_chw, resize_exact};
use crate::{ImageSpec, Limits, MediaError, Pixels};

/// The grid (cols, rows) for a `width`×`height` image, or `None` for thumbnail only.
///
/// Ties in aspect error go to more tiles when the image has at least half the pixels
/// of the larger grid, to fewer tiles otherwise (do not upscale a small image into many
/// tiles).
pub fn choose_grid(width: u32, height: u32, size: u32, max_tiles: u32) -> Option<(u32, u32)> {
    if max_tiles < 2 || size == 0 || (width <= size && height <= size) || width == 0 || height == 0
    {
        return None;
    }
    let target = (f64::from(width) / f64::from(height)).ln();
    let area = f64::from(width) * f64::from(height);
    let tile_area = f64::from(size) * f64::from(size);
    let mut best: Option<(f64, u32, u32)> = None;
    for cols in 1..=max_tiles {
        for rows in 1..=max_tiles / cols {
            if cols * rows < 2 {
                continue;
            }
            let err = ((f64::from(cols) / f64::from(rows)).ln() - target).abs();
            let better = match best {
                None => true,
                Some((e, c, r)) if (err - e).abs() < 1e-9 => {
                    let (old, new) = (c * r, cols * rows);
                    new > old && area >= 0.5 * f64::from(new) * tile_area
                }
                Some((e, _, _)) => err < e,
            };
            if better {
                best = Some((err, cols, rows));
            }
        }
    }
    best.map(|(_, c, r)| (c, r))
}

/// Decode an image and return its tiles: `n = 1 + cols*rows` images of `size`×`size`.
pub fn image_tiles(bytes: &[u8], spec: &ImageSpec, limits: &Limits) -> Result<Pixels, MediaError> {
    if spec.size == 0 {
        return Err(MediaError::InvalidSpec("the tile size is 0"));
    }
    let img = decode_rgb(bytes, limits)?;
    let (w, h) = img.dimensions();
    let size = spec.size;
    let grid = choose_grid(w, h, size, spec.max_tiles);
    let side = size as usize;
    let n = 1 + grid.map_or(0, |(c, r)| (c * r) as usize);
    let mut data = Vec::with_capacity(n * 3 * side * side);
    match grid {
        None => push_chw(&mut data, &resize_exact(&img, size, size), spec),
        Some((cols, rows)) => {
            let (gw, gh) = (cols * size, rows * size);
            // One cheap shrink serves both the thumbnail and the grid.
            let mid = if w > 3 * gw || h > 3 * gh {
                prescale(&img, gw, gh)
            } else {
                img
            };
            push_chw(&mut data, &resize_exact(&mid, size, size), spec);
            let big = resize_exact(&mid, gw, gh);
            for row in 0..rows {
                for col in 0..cols {
                    push_tile_chw(&mut data, &big, col, row, spec);
                }
            }
        }
    }
    Ok(Pixels {
        data,
        n,
        h: side,
        w: side,
    })
}
