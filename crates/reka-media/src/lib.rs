//! Media preprocessing for the wasm preprocess component, with no I/O: everything
//! takes bytes in memory and returns tensors ready for an encoder.
//!
//! - Images ([`image_tiles`]): PNG, JPEG, WebP or GIF (detected from the bytes), checked
//!   against [`Limits`] *before* decoding, turned into a thumbnail tile plus a grid of
//!   tiles, normalised CHW `f32`.
//! - Video ([`video_frames`], [`video_from_images`]): frames of an animated GIF/WebP or
//!   a list of images, sampled uniformly, one tile per frame.
//! - Reka Edge's tiling and video frames ([`uhd`]), resampled as Pillow does ([`pil_resize`]).
//! - Audio ([`decode_wav`], [`resample`], [`log_mel`], [`audio_features`]): our own
//!   RIFF/WAVE parser, a windowed-sinc resampler and Whisper's log-mel spectrogram.

mod decode;
mod error;
mod mel;
mod pil;
mod resample;
mod resize;
mod tiles;
pub mod uhd;
mod video;
mod wav;

pub use error::MediaError;
pub use mel::{log_mel, Mel, HOP_LENGTH, N_FFT};
pub use pil::{resize as pil_resize, Filter as PilFilter};
pub use resample::resample;
pub use tiles::{choose_grid, image_tiles};
pub use video::{sample_indices, video_frames, video_from_images};
pub use wav::{check_wav, decode_wav, Audio};

/// The sample rate of [`log_mel`]'s input (Whisper's).
pub const SAMPLE_RATE: u32 = 16_000;

/// Limits that protect the server from hostile media.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Size of one input (for [`video_from_images`]: of all the images together).
    pub max_bytes: usize,
    /// Width × height of one image or animation frame, read from the header before decoding.
    pub max_pixels: u64,
    /// Decoded frames of an animation, or images in a frame list.
    pub max_frames: usize,
    /// Pixels of all the decoded frames of an animation together (frames × canvas):
    /// a GIF of tiny sub-frames on a huge canvas costs a whole canvas per frame.
    pub max_video_pixels: u64,
    /// Length of a WAV file, read from its header before decoding the samples.
    pub max_audio_seconds: f32,
    /// Highest sample rate of a WAV file (the lowest is [`MIN_SAMPLE_RATE`]), read from
    /// its header before any sample is decoded: it bounds the resampler's work per sample.
    pub max_sample_rate: u32,
    /// Most channels of a WAV file, read from its header.
    pub max_channels: usize,
}

/// The lowest sample rate of a WAV file we accept (below it, upsampling to
/// [`SAMPLE_RATE`] would multiply the samples more than 16-fold).
pub const MIN_SAMPLE_RATE: u32 = 1_000;

impl Default for Limits {
    /// 20 MiB, 40 megapixels, 512 frames, 128 megapixels of frames, 30 s, 192 kHz,
    /// 32 channels.
    fn default() -> Self {
        Limits {
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_frames: 512,
            max_video_pixels: 128_000_000,
            max_audio_seconds: 30.0,
            max_sample_rate: 192_000,
            max_channels: 32,
        }
    }
}

impl Limits {
    pub(crate) fn check_bytes(&self, size: usize) -> Result<(), MediaError> {
        if size > self.max_bytes {
            return Err(MediaError::TooManyBytes {
                size,
                max: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// How a model wants its images.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSpec {
    /// Side of one square tile, e.g. 224.
    pub size: u32,
    /// Per-channel (R, G, B) mean of pixel values scaled to 0..1.
    pub mean: [f32; 3],
    /// Per-channel (R, G, B) standard deviation of pixel values scaled to 0..1.
    pub std: [f32; 3],
    /// Most tiles of the grid that follows the thumbnail tile (0 or 1: thumbnail only).
    pub max_tiles: u32,
}

/// Normalised pixels: CHW per image, images back to back, `data.len() == n * 3 * h * w`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pixels {
    pub data: Vec<f32>,
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

/// Decode a WAV file, mix it to mono, resample it to [`SAMPLE_RATE`] and compute its
/// Whisper log-mel spectrogram with `n_mels` bins (no padding to 30 s).
pub fn audio_features(wav: &[u8], n_mels: usize, limits: &Limits) -> Result<Mel, MediaError> {
    let audio = decode_wav(wav, limits)?;
    let samples = resample(&audio.samples, audio.sample_rate, SAMPLE_RATE);
    Ok(log_mel(&samples, n_mels))
}
