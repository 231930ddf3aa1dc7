//! Image decoding with the safety checks done first: the format is detected from the
//! magic bytes (PNG, JPEG, WebP, GIF only), the dimensions are read from the header and
//! checked against [`Limits::max_pixels`] before any pixel buffer is allocated, and the
//! decoder runs under an allocation limit.
//!
//! Alpha is composited over white (a transparent logo reads as it does on a web page);
//! JPEG/WebP EXIF orientation is applied.

use std::io::Cursor;

use ::image::codecs::gif::GifDecoder;
use ::image::codecs::webp::WebPDecoder;
use ::image::{
    AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage,
    RgbaImage,
};

use crate::{Limits, MediaError};

/// An image format we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Jpeg,
    WebP,
    Gif,
}

impl Format {
    /// Detect the format from the first bytes; `None` for anything else.
    pub(crate) fn detect(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Format::WebP)
        } else {
            None
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::WebP => "WebP",
            Format::Gif => "GIF",
        }
    }

    /// The dimensions written in the first header, for the formats that keep
    /// them at a fixed place (PNG's IHDR, GIF's logical screen). The decoders'
    /// own header reading can fail on a huge image before it reports them (on
    /// wasm32 the buffer size they compute overflows a 32-bit usize).
    fn header_dimensions(self, b: &[u8]) -> Option<(u32, u32)> {
        let be = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let le16 = |i: usize| Some(u32::from(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?)));
        match self {
            Format::Png if b.get(12..16) == Some(b"IHDR") => Some((be(16)?, be(20)?)),
            Format::Gif => Some((le16(6)?, le16(8)?)),
            _ => None,
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Png => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::WebP => ImageFormat::WebP,
            Format::Gif => ImageFormat::Gif,
        }
    }

    /// Map a decoder error to ours, naming this format.
    pub(crate) fn error(self, e: ImageError) -> MediaError {
        match e {
            ImageError::Limits(l) => MediaError::ImageMemory {
                format: self.name(),
                detail: l.to_string(),
            },
            other => MediaError::CorruptImage {
                format: self.name(),
                detail: other.to_string(),
            },
        }
    }
}

/// The allocation limit handed to the decoders: room for one RGBA16 frame of
/// `max_pixels` plus slack for the decoder's own state.
fn decoder_limits(limits: &Limits) -> ::image::Limits {
    let mut l = ::image::Limits::default();
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    l
}

/// Refuse a `width`×`height` frame past the pixel limit.
pub(crate) fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), MediaError> {
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    Ok(())
}

/// Check the byte limit and detect the format.
pub(crate) fn sniff(bytes: &[u8], limits: &Limits) -> Result<Format, MediaError> {
    limits.check_bytes(bytes.len())?;
    Format::detect(bytes).ok_or(MediaError::UnsupportedImageFormat)
}

/// Decode a still image (the first frame of an animation) to RGB.
pub(crate) fn decode_rgb(bytes: &[u8], limits: &Limits) -> Result<RgbImage, MediaError> {
    let format = sniff(bytes, limits)?;
    // The header alone first, without allocation limits (the decoders refuse a
    // huge header with a generic memory error): a bomb gets the pixel message.
    let mut header = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    header.no_limits();
    if let Some((w, h)) = header.into_dimensions().ok().or_else(|| format.header_dimensions(bytes)) {
        check_pixels(w, h, limits)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(|e| format.error(e))?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, limits)?;
    if w == 0 || h == 0 {
        return Err(MediaError::CorruptImage {
            format: format.name(),
            detail: format!("the header says {w}×{h} pixels"),
        });
    }
    // A broken EXIF block must not reject an otherwise fine image.
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| format.error(e))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_rgb_over_white(img))
}

/// Flatten any colour type to 8-bit RGB, compositing alpha over white.
pub(crate) fn to_rgb_over_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    rgba_over_white(&img.into_rgba8())
}

/// Composite an RGBA buffer over a white background.
pub(crate) fn rgba_over_white(rgba: &RgbaImage) -> RgbImage {
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(rgba.as_raw().len() / 4 * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            // c*a/255 + 255*(255-a)/255, rounded.
            let v = (u32::from(c) * a + 255 * (255 - a) + 127) / 255;
            out.push(v as u8);
        }
    }
    // The buffer has exactly w*h*3 bytes.
    RgbImage::from_raw(w, h, out).unwrap_or_else(|| RgbImage::new(w, h))
}

/// Whether `bytes` hold an animation we decode frame by frame (GIF, animated WebP).
pub(crate) fn is_animated(bytes: &[u8], format: Format) -> bool {
    match format {
        Format::Gif => true,
        Format::WebP => WebPDecoder::new(Cursor::new(bytes))
            .map(|d| d.has_animation())
            .unwrap_or(false),
        Format::Png | Format::Jpeg => false,
    }
}

/// Visit the composited frames of a GIF or animated WebP in order, at most
/// `limits.max_frames` of them and `limits.max_video_pixels` pixels in all (past
/// either, the next frame is an error). `visit(index, frame)`.
pub(crate) fn for_each_frame(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
    mut visit: impl FnMut(usize, &RgbaImage) -> Result<(), MediaError>,
) -> Result<usize, MediaError> {
    let err = |e| format.error(e);
    let (frames, (w, h)) = match format {
        Format::Gif => {
            let mut d = GifDecoder::new(Cursor::new(bytes)).map_err(err)?;
            let (w, h) = d.dimensions();
            check_pixels(w, h, limits)?;
            d.set_limits(decoder_limits(limits)).map_err(err)?;
            (d.into_frames(), (w, h))
        }
        Format::WebP => {
            let d = WebPDecoder::new(Cursor::new(bytes)).map_err(err)?;
            let (w, h) = d.dimensions();
            check_pixels(w, h, limits)?;
            (d.into_frames(), (w, h))
        }
        Format::Png | Format::Jpeg => return Err(MediaError::UnsupportedImageFormat),
    };
    let canvas = u64::from(w) * u64::from(h);
    let mut count = 0;
    for frame in frames {
        if count == limits.max_frames {
            return Err(MediaError::TooManyFrames {
                max: limits.max_frames,
            });
        }
        // Each frame comes composited onto the whole canvas.
        if (count as u64 + 1).saturating_mul(canvas) > limits.max_video_pixels {
            return Err(MediaError::TooManyVideoPixels {
                width: w,
                height: h,
                max: limits.max_video_pixels,
            });
        }
        let frame = frame.map_err(err)?;
        visit(count, frame.buffer())?;
        count += 1;
    }
    Ok(count)
}
