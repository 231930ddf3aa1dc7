//! Video: frame sampling from animated GIFs, stills and image lists.

#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};
use reka_media::{
    sample_indices, video_frames, video_from_images, ImageSpec, Limits, MediaError, Pixels,
};

const PALETTE: [[u8; 3]; 6] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [255, 0, 255],
    [0, 255, 255],
];

fn spec(size: u32) -> ImageSpec {
    ImageSpec {
        size,
        mean: [0.0; 3],
        std: [1.0; 3],
        max_tiles: 4,
    }
}

/// A 16×16 GIF with `n` full frames, frame i all of colour PALETTE[i % 6].
fn gif(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette: Vec<u8> = PALETTE.iter().flatten().copied().collect();
        let mut enc = gif::Encoder::new(&mut out, 16, 16, &palette).unwrap();
        for i in 0..n {
            let mut f = gif::Frame::from_indexed_pixels(16, 16, vec![(i % 6) as u8; 256], None);
            f.delay = 10;
            enc.write_frame(&f).unwrap();
        }
    }
    out
}

/// The (r, g, b) of pixel (x, y) of frame `i`, scaled back to 0..255.
fn rgb(p: &Pixels, i: usize, x: usize, y: usize) -> [u8; 3] {
    let plane = p.h * p.w;
    let at = |c: usize| (p.data[(i * 3 + c) * plane + y * p.w + x] * 255.0).round() as u8;
    [at(0), at(1), at(2)]
}

#[test]
fn indices_are_numpy_linspace_rounded() {
    assert_eq!(sample_indices(5, 3), vec![0, 2, 4]);
    assert_eq!(sample_indices(100, 4), vec![0, 33, 66, 99]);
    // np.round(np.linspace(0, 2, 5)) = [0, 0, 1, 2, 2] (ties to even).
    assert_eq!(sample_indices(3, 5), vec![0, 0, 1, 2, 2]);
    assert_eq!(sample_indices(5, 8), vec![0, 1, 1, 2, 2, 3, 3, 4]);
    assert_eq!(sample_indices(10, 1), vec![0]);
    assert_eq!(sample_indices(0, 4), Vec::<usize>::new());
}

#[test]
fn animated_gif_frames_are_sampled_uniformly() {
    let p = video_frames(&gif(5), 3, &spec(8), &Limits::default()).unwrap();
    assert_eq!((p.n, p.h, p.w, p.data.len()), (3, 8, 8, 3 * 3 * 64));
    for (i, colour) in [0, 2, 4].into_iter().enumerate() {
        assert_eq!(rgb(&p, i, 3, 5), PALETTE[colour], "sampled frame {i}");
    }
    // More frames asked than there are: indices repeat.
    let p = video_frames(&gif(5), 8, &spec(8), &Limits::default()).unwrap();
    let got: Vec<[u8; 3]> = (0..8).map(|i| rgb(&p, i, 0, 0)).collect();
    let want: Vec<[u8; 3]> = [0, 1, 1, 2, 2, 3, 3, 4]
        .iter()
        .map(|&c| PALETTE[c])
        .collect();
    assert_eq!(got, want);
}

#[test]
fn sub_frames_are_composited_onto_the_canvas() {
    // Frame 0: all red. Frame 1: a 4×4 blue patch at (8, 8), kept on top of frame 0.
    let mut out = Vec::new();
    {
        let palette: Vec<u8> = PALETTE.iter().flatten().copied().collect();
        let mut enc = gif::Encoder::new(&mut out, 16, 16, &palette).unwrap();
        let mut f0 = gif::Frame::from_indexed_pixels(16, 16, vec![0u8; 256], None);
        f0.dispose = gif::DisposalMethod::Keep;
        enc.write_frame(&f0).unwrap();
        let mut f1 = gif::Frame::from_indexed_pixels(4, 4, vec![2u8; 16], None);
        (f1.left, f1.top) = (8, 8);
        enc.write_frame(&f1).unwrap();
    }
    let p = video_frames(&out, 2, &spec(16), &Limits::default()).unwrap();
    assert_eq!(rgb(&p, 0, 9, 9), PALETTE[0]);
    assert_eq!(rgb(&p, 1, 9, 9), PALETTE[2]);
    assert_eq!(
        rgb(&p, 1, 2, 2),
        PALETTE[0],
        "outside the patch frame 0 shows through"
    );
}

#[test]
fn a_still_image_is_a_one_frame_video() {
    let mut png = Cursor::new(Vec::new());
    RgbImage::from_pixel(20, 10, Rgb([0, 255, 255]))
        .write_to(&mut png, ImageFormat::Png)
        .unwrap();
    let p = video_frames(png.get_ref(), 3, &spec(8), &Limits::default()).unwrap();
    assert_eq!(p.n, 3);
    for i in 0..3 {
        assert_eq!(rgb(&p, i, 7, 7), [0, 255, 255]);
    }
}

#[test]
fn a_list_of_images_is_sampled_the_same_way() {
    let frames: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let mut b = Cursor::new(Vec::new());
            RgbImage::from_pixel(12, 12, Rgb(PALETTE[i]))
                .write_to(&mut b, ImageFormat::Png)
                .unwrap();
            b.into_inner()
        })
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let p = video_from_images(&refs, 4, &spec(8), &Limits::default()).unwrap();
    let got: Vec<[u8; 3]> = (0..4).map(|i| rgb(&p, i, 1, 1)).collect();
    // round([0, 5/3, 10/3, 5]) = [0, 2, 3, 5]
    assert_eq!(got, vec![PALETTE[0], PALETTE[2], PALETTE[3], PALETTE[5]]);
    let few = Limits {
        max_frames: 5,
        ..Limits::default()
    };
    assert!(matches!(
        video_from_images(&refs, 4, &spec(8), &few),
        Err(MediaError::TooManyFrames { max: 5 })
    ));
    assert!(matches!(
        video_from_images(&[], 4, &spec(8), &Limits::default()),
        Err(MediaError::NoFrames)
    ));
}

#[test]
fn frame_limits_and_bad_requests() {
    let few = Limits {
        max_frames: 3,
        ..Limits::default()
    };
    let e = video_frames(&gif(5), 2, &spec(8), &few).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the animation has more than 3 frames; at most 3 are accepted"
    );
    // The gif crate already refuses a GIF without an image at the header.
    let e = video_frames(&gif(0), 2, &spec(8), &Limits::default()).unwrap_err();
    assert!(
        matches!(e, MediaError::NoFrames | MediaError::CorruptImage { .. }),
        "{e:?}"
    );
    assert!(matches!(
        video_frames(&gif(2), 0, &spec(8), &Limits::default()),
        Err(MediaError::ZeroFramesRequested)
    ));
    let cut = gif(5);
    let e = video_frames(&cut[..cut.len() - 20], 2, &spec(8), &Limits::default()).unwrap_err();
    assert!(
        matches!(e, MediaError::CorruptImage { format: "GIF", .. }),
        "{e:?}"
    );
}

/// A 16×16 lossless animated WebP, 4 frames: red, green, blue, yellow. Made with libwebp
/// 1.2.4's `img2webp -loop 0 -lossless -d 100 f0.ppm f1.ppm f2.ppm f3.ppm -o anim.webp`
/// from solid-colour PPM frames (the `image` crate cannot encode animated WebP).
const ANIMATED_WEBP: &[u8] = &[
    0x52, 0x49, 0x46, 0x46, 0xE4, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x58,
    0x0A, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0F, 0x00, 0x00, 0x0F, 0x00, 0x00, 0x41, 0x4E,
    0x49, 0x4D, 0x06, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x41, 0x4E, 0x4D, 0x46,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0F, 0x00, 0x00, 0x0F, 0x00, 0x00,
    0x64, 0x00, 0x00, 0x02, 0x56, 0x50, 0x38, 0x4C, 0x0F, 0x00, 0x00, 0x00, 0x2F, 0x0F, 0xC0, 0x03,
    0x00, 0x07, 0x10, 0xFD, 0x8F, 0xFE, 0x07, 0x22, 0xA2, 0xFF, 0x01, 0x00, 0x41, 0x4E, 0x4D, 0x46,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0F, 0x00, 0x00, 0x0F, 0x00, 0x00,
    0x64, 0x00, 0x00, 0x00, 0x56, 0x50, 0x38, 0x4C, 0x0F, 0x00, 0x00, 0x00, 0x2F, 0x0F, 0xC0, 0x03,
    0x00, 0x07, 0xD0, 0xFF, 0x88, 0xFE, 0x07, 0x22, 0xA2, 0xFF, 0x01, 0x00, 0x41, 0x4E, 0x4D, 0x46,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0F, 0x00, 0x00, 0x0F, 0x00, 0x00,
    0x64, 0x00, 0x00, 0x00, 0x56, 0x50, 0x38, 0x4C, 0x0F, 0x00, 0x00, 0x00, 0x2F, 0x0F, 0xC0, 0x03,
    0x00, 0x07, 0x10, 0xD1, 0xFF, 0xFE, 0x07, 0x22, 0xA2, 0xFF, 0x01, 0x00, 0x41, 0x4E, 0x4D, 0x46,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0F, 0x00, 0x00, 0x0F, 0x00, 0x00,
    0x64, 0x00, 0x00, 0x00, 0x56, 0x50, 0x38, 0x4C, 0x10, 0x00, 0x00, 0x00, 0x2F, 0x0F, 0xC0, 0x03,
    0x00, 0x07, 0xD0, 0xFF, 0xFE, 0x47, 0xFF, 0x03, 0x11, 0xD1, 0xFF, 0x00,
];

#[test]
fn animated_webp_frames_are_sampled() {
    let p = video_frames(ANIMATED_WEBP, 4, &spec(8), &Limits::default()).unwrap();
    // image-webp 0.2's frame blending rounds 255 down to 254 on blended frames: ±1.
    let near = |got: [u8; 3], want: [u8; 3]| got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 1);
    let want = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
    for (i, w) in want.into_iter().enumerate() {
        assert!(
            near(rgb(&p, i, 4, 4), w),
            "frame {i}: {:?}",
            rgb(&p, i, 4, 4)
        );
    }
    let p = video_frames(ANIMATED_WEBP, 2, &spec(8), &Limits::default()).unwrap();
    assert!(near(rgb(&p, 0, 0, 0), want[0]) && near(rgb(&p, 1, 7, 7), want[3]));
}

/// A GIF of 1×1 sub-frames on a 4000×4000 canvas costs 16 megapixels of
/// compositing per frame though each frame is a few bytes: the animation's pixels
/// are budgeted in all (`max_video_pixels`), so 500 such frames (8 gigapixels) are
/// refused after the 8th frame rather than decoded for a minute.
#[test]
fn tiny_sub_frames_on_a_huge_canvas_are_refused_by_the_pixel_budget() {
    let gif_of = |frames: u16| {
        let mut out = Vec::new();
        let palette: Vec<u8> = PALETTE.iter().flatten().copied().collect();
        let mut enc = gif::Encoder::new(&mut out, 4000, 4000, &palette).unwrap();
        for i in 0..frames {
            let mut f = gif::Frame::from_indexed_pixels(1, 1, vec![(i % 6) as u8], None);
            (f.left, f.top) = (i, i);
            enc.write_frame(&f).unwrap();
        }
        drop(enc);
        out
    };
    let many = gif_of(500);
    assert!(many.len() < 20_000, "{} bytes", many.len());
    let t = std::time::Instant::now();
    let e = video_frames(&many, 4, &spec(8), &Limits::default()).unwrap_err();
    println!("refused in {:?}", t.elapsed());
    assert_eq!(
        e.to_string(),
        "the animation's frames hold more than 128000000 pixels together (4000×4000 per frame); at most 128000000 are accepted"
    );
    let budget = Limits { max_video_pixels: 3 * 16_000_000, ..Limits::default() };
    assert!(matches!(
        reka_media::uhd::video_frames(&many, 4, &spec(8), &budget),
        Err(MediaError::TooManyVideoPixels { max: 48_000_000, .. })
    ));
    // Within the budget, the same kind of animation decodes.
    assert_eq!(video_frames(&gif_of(3), 3, &spec(8), &budget).unwrap().n, 3);
}
