//! The one error type of the crate. Every message names the problem in words a user
//! of the API can act on (what was wrong with the media and what is accepted).

/// What went wrong while preprocessing media.
#[derive(thiserror::Error, Debug)]
pub enum MediaError {
    /// The input is larger than [`crate::Limits::max_bytes`].
    #[error("the media is {size} bytes; at most {max} bytes are accepted")]
    TooManyBytes { size: usize, max: usize },
    /// The bytes are not PNG, JPEG, WebP or GIF.
    #[error("unsupported image format: expected PNG, JPEG, WebP or GIF")]
    UnsupportedImageFormat,
    /// One frame has more pixels than [`crate::Limits::max_pixels`] (checked from the header).
    #[error("the image is {width}×{height} pixels; at most {max} pixels are accepted")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    /// The decoder failed: the file is cut short or damaged.
    #[error("the image is truncated or corrupt ({format}): {detail}")]
    CorruptImage {
        format: &'static str,
        detail: String,
    },
    /// The decoder would need more memory than allowed.
    #[error("the image needs more memory to decode than is allowed ({format}): {detail}")]
    ImageMemory {
        format: &'static str,
        detail: String,
    },
    /// An animation (or a list of images) without a single frame.
    #[error("the animation has no frames")]
    NoFrames,
    /// An animation (or a list of images) longer than [`crate::Limits::max_frames`].
    #[error("the animation has more than {max} frames; at most {max} are accepted")]
    TooManyFrames { max: usize },
    /// An animation whose frames hold more pixels together than
    /// [`crate::Limits::max_video_pixels`].
    #[error("the animation's frames hold more than {max} pixels together ({width}×{height} per frame); at most {max} are accepted")]
    TooManyVideoPixels { width: u32, height: u32, max: u64 },
    /// The caller asked for zero video frames.
    #[error("at least one video frame must be requested")]
    ZeroFramesRequested,
    /// The image spec cannot produce tiles (tile side 0).
    #[error("invalid image spec: {0}")]
    InvalidSpec(&'static str),
    /// Not a RIFF/WAVE file at all.
    #[error("not a WAV file: {0}")]
    NotWav(&'static str),
    /// A RIFF/WAVE file whose structure is cut short or inconsistent.
    #[error("the WAV file is truncated or corrupt: {0}")]
    CorruptWav(String),
    /// A WAV encoding we do not decode (compressed formats, odd sample sizes).
    #[error("unsupported WAV encoding: {0}")]
    UnsupportedWav(String),
    /// A sample rate outside [`crate::MIN_SAMPLE_RATE`]..=[`crate::Limits::max_sample_rate`].
    #[error("the WAV header says a sample rate of {rate} Hz; {min} to {max} Hz are accepted")]
    SampleRate { rate: u32, min: u32, max: u32 },
    /// More channels than [`crate::Limits::max_channels`], or none.
    #[error("the WAV header says {channels} channels; 1 to {max} are accepted")]
    Channels { channels: usize, max: usize },
    /// Audio longer than [`crate::Limits::max_audio_seconds`].
    #[error("the audio is {seconds:.1} s long; at most {max} s are accepted")]
    AudioTooLong { seconds: f32, max: f32 },
}
