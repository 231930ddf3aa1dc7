//! Image decoding, the limits, and tiling.

#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reka_media::{choose_grid, image_tiles, ImageSpec, Limits, MediaError};

/// A spec that maps 0..255 to 0..1 (mean 0, std 1).
fn spec(size: u32, max_tiles: u32) -> ImageSpec {
    ImageSpec {
        size,
        mean: [0.0; 3],
        std: [1.0; 3],
        max_tiles,
    }
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// The mean of channel `c` of image `i` in `p`.
fn channel_mean(p: &reka_media::Pixels, i: usize, c: usize) -> f32 {
    let plane = p.h * p.w;
    let at = (i * 3 + c) * plane;
    p.data[at..at + plane].iter().sum::<f32>() / plane as f32
}

#[test]
fn every_format_decodes_to_the_right_colour() {
    let img = RgbImage::from_pixel(64, 48, Rgb([200, 100, 50]));
    for (format, tol) in [
        (ImageFormat::Png, 1e-5),
        (ImageFormat::Jpeg, 0.03),
        (ImageFormat::WebP, 1e-5),
        (ImageFormat::Gif, 0.03),
    ] {
        let bytes = encode(&img, format);
        let s = ImageSpec {
            size: 32,
            mean: [0.5; 3],
            std: [0.5; 3],
            max_tiles: 4,
        };
        let p = image_tiles(&bytes, &s, &Limits::default()).unwrap();
        // 64×48 is 4:3, larger than 32: thumbnail + a 2×2 grid.
        assert_eq!((p.n, p.h, p.w), (5, 32, 32), "{format:?}");
        assert_eq!(p.data.len(), 5 * 3 * 32 * 32);
        for (c, v) in [200.0f32, 100.0, 50.0].iter().enumerate() {
            let want = (v / 255.0 - 0.5) / 0.5;
            for i in 0..p.n {
                let got = channel_mean(&p, i, c);
                assert!(
                    (got - want).abs() < tol,
                    "{format:?} tile {i} channel {c}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn alpha_is_composited_over_white() {
    let mut img = RgbaImage::from_pixel(8, 8, Rgba([0, 0, 0, 0]));
    img.put_pixel(0, 0, Rgba([0, 0, 0, 255]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    let p = image_tiles(out.get_ref(), &spec(8, 4), &Limits::default()).unwrap();
    assert_eq!(p.n, 1);
    assert_eq!(p.data[0], 0.0); // the opaque black pixel
    assert_eq!(p.data[1], 1.0); // a transparent one, now white
}

#[test]
fn truncated_png_names_the_format() {
    let bytes = encode(
        &RgbImage::from_pixel(64, 64, Rgb([1, 2, 3])),
        ImageFormat::Png,
    );
    for cut in [bytes.len() / 2, 40, 12] {
        let e = image_tiles(&bytes[..cut], &spec(32, 4), &Limits::default()).unwrap_err();
        assert!(
            matches!(e, MediaError::CorruptImage { format: "PNG", .. }),
            "cut {cut}: {e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("the image is truncated or corrupt (PNG): "),
            "{e}"
        );
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

#[test]
fn decompression_bomb_header_is_refused_before_decoding() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // A tiny zlib stream (one empty stored block) as the only IDAT.
    chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    chunk(&mut png, b"IEND", &[]);
    let e = image_tiles(&png, &spec(224, 4), &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the image is 50000×50000 pixels; at most 40000000 pixels are accepted"
    );
}

#[test]
fn other_formats_and_noise_are_unsupported() {
    let bmp = [b"BM".as_slice(), &[0u8; 60]].concat();
    let noise: Vec<u8> = (0..500u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for bytes in [bmp.as_slice(), &noise, b"", b"RIFF\0\0\0\0WAVEfmt "] {
        let e = image_tiles(bytes, &spec(32, 4), &Limits::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported image format: expected PNG, JPEG, WebP or GIF"
        );
    }
}

#[test]
fn byte_limit_is_checked_first() {
    let bytes = encode(&RgbImage::new(16, 16), ImageFormat::Png);
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let e = image_tiles(&bytes, &spec(32, 4), &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the media is {} bytes; at most 10 bytes are accepted",
            bytes.len()
        )
    );
}

#[test]
fn a_wide_image_gets_a_row_of_tiles_in_order() {
    // 1000×250 (4:1): left half red, right half blue.
    let img = RgbImage::from_fn(1000, 250, |x, _| {
        if x < 500 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let p = image_tiles(
        &encode(&img, ImageFormat::Png),
        &spec(100, 4),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((p.n, p.h, p.w), (5, 100, 100));
    assert_eq!(p.data.len(), 5 * 3 * 100 * 100);
    // Tile 0 is the whole image: half red, half blue.
    assert!((channel_mean(&p, 0, 0) - 0.5).abs() < 0.02);
    // Grid tiles 1..=4 go left to right.
    for (i, red) in [(1, 1.0), (2, 1.0), (3, 0.0), (4, 0.0)] {
        assert!((channel_mean(&p, i, 0) - red).abs() < 0.02, "tile {i}");
        assert!(
            (channel_mean(&p, i, 2) - (1.0 - red)).abs() < 0.02,
            "tile {i}"
        );
    }
}

#[test]
fn small_images_and_max_tiles_one_give_the_thumbnail_only() {
    let bytes = encode(&RgbImage::new(50, 40), ImageFormat::Png);
    assert_eq!(
        image_tiles(&bytes, &spec(100, 4), &Limits::default())
            .unwrap()
            .n,
        1
    );
    let bytes = encode(&RgbImage::new(500, 400), ImageFormat::Png);
    assert_eq!(
        image_tiles(&bytes, &spec(100, 1), &Limits::default())
            .unwrap()
            .n,
        1
    );
}

#[test]
fn grid_choice_follows_the_aspect_ratio() {
    assert_eq!(choose_grid(4000, 3000, 224, 4), Some((2, 2)));
    assert_eq!(choose_grid(3000, 4000, 224, 4), Some((2, 2)));
    assert_eq!(choose_grid(1000, 250, 100, 4), Some((4, 1)));
    assert_eq!(choose_grid(300, 1000, 224, 4), Some((1, 3)));
    // 2:1 fits 2×1 and 4×2 equally; a large image takes the larger grid.
    assert_eq!(choose_grid(2000, 1000, 224, 9), Some((4, 2)));
    assert_eq!(choose_grid(500, 250, 224, 9), Some((2, 1)));
    // Square and small: 2×2 would upscale a 300×300 image 1.5×; still the best aspect.
    assert_eq!(choose_grid(300, 300, 224, 4), Some((2, 2)));
    assert_eq!(choose_grid(200, 100, 224, 4), None);
    assert_eq!(choose_grid(4000, 3000, 224, 1), None);
}

/// Not a test of correctness: the time to tile a 4000×3000 JPEG photo-like image.
/// `cargo test --release -p reka-media --test images -- --ignored --nocapture`
#[test]
#[ignore]
fn timing_4000x3000_jpeg() {
    let img = RgbImage::from_fn(4000, 3000, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 239) as u8])
    });
    let bytes = encode(&img, ImageFormat::Jpeg);
    let s = ImageSpec {
        size: 224,
        mean: [0.48, 0.46, 0.41],
        std: [0.27, 0.26, 0.28],
        max_tiles: 4,
    };
    let t = std::time::Instant::now();
    let decoded = image::load_from_memory(&bytes).unwrap();
    println!(
        "(decoding alone: {:?}, {}×{})",
        t.elapsed(),
        decoded.width(),
        decoded.height()
    );
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let p = image_tiles(&bytes, &s, &Limits::default()).unwrap();
        println!(
            "image_tiles 4000×3000 JPEG ({} bytes): {:?}, n = {}",
            bytes.len(),
            t.elapsed(),
            p.n
        );
    }
}
