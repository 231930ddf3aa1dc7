//! A RIFF/WAVE parser of our own. Accepted encodings: PCM 8-bit unsigned and 16/24/32-bit
//! signed, IEEE float 32/64-bit, and `WAVE_FORMAT_EXTENSIBLE` with a PCM or float
//! sub-format (container sizes as above). Up to [`Limits::max_channels`] channels are
//! mixed down to mono by the mean of the channels. Everything in the header that drives
//! work or allocation is checked before any sample is converted: the channel count, the
//! sample rate (against [`MIN_SAMPLE_RATE`] and [`Limits::max_sample_rate`]), the data
//! chunk's size against the bytes that follow, and the length against
//! [`Limits::max_audio_seconds`]. A `data` chunk whose size field is
//! `0xFFFFFFFF` (streamed output with the size never filled in) runs to the end of the
//! file; any other size past the end of the file is a truncated file.

use crate::{Limits, MediaError, MIN_SAMPLE_RATE};

/// Mono audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

const PCM: u16 = 0x0001;
const FLOAT: u16 = 0x0003;
const EXTENSIBLE: u16 = 0xFFFE;
/// The tail shared by the standard sub-format GUIDs (after the 2-byte format tag).
const GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    U8,
    I16,
    I24,
    I32,
    F32,
    F64,
}

struct Fmt {
    encoding: Encoding,
    channels: usize,
    rate: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn tag_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 | 0x0055 => "MPEG audio",
        _ => "an unknown codec",
    }
}

fn corrupt(msg: impl Into<String>) -> MediaError {
    MediaError::CorruptWav(msg.into())
}

fn parse_fmt(c: &[u8], limits: &Limits) -> Result<Fmt, MediaError> {
    if c.len() < 16 {
        return Err(corrupt(format!(
            "the fmt chunk is {} bytes; 16 expected",
            c.len()
        )));
    }
    let mut tag = u16_at(c, 0);
    let channels = usize::from(u16_at(c, 2));
    let rate = u32_at(c, 4);
    let block_align = usize::from(u16_at(c, 12));
    let bits = u16_at(c, 14);
    if tag == EXTENSIBLE {
        if c.len() < 40 {
            return Err(corrupt(
                "the WAVE_FORMAT_EXTENSIBLE fmt chunk is shorter than 40 bytes",
            ));
        }
        if c[26..40] != GUID_TAIL {
            return Err(MediaError::UnsupportedWav(
                "WAVE_FORMAT_EXTENSIBLE with a non-standard sub-format GUID".into(),
            ));
        }
        tag = u16_at(c, 24);
    }
    if channels == 0 || channels > limits.max_channels {
        return Err(MediaError::Channels {
            channels,
            max: limits.max_channels,
        });
    }
    if !(MIN_SAMPLE_RATE..=limits.max_sample_rate).contains(&rate) {
        return Err(MediaError::SampleRate {
            rate,
            min: MIN_SAMPLE_RATE,
            max: limits.max_sample_rate,
        });
    }
    let encoding = match (tag, bits) {
        (PCM, 8) => Encoding::U8,
        (PCM, 16) => Encoding::I16,
        (PCM, 24) => Encoding::I24,
        (PCM, 32) => Encoding::I32,
        (FLOAT, 32) => Encoding::F32,
        (FLOAT, 64) => Encoding::F64,
        (PCM, b) => {
            return Err(MediaError::UnsupportedWav(format!(
                "{b}-bit PCM (8, 16, 24 or 32-bit are supported)"
            )))
        }
        (FLOAT, b) => {
            return Err(MediaError::UnsupportedWav(format!(
                "{b}-bit float (32 or 64-bit are supported)"
            )))
        }
        (t, _) => {
            return Err(MediaError::UnsupportedWav(format!(
                "format 0x{t:04X} ({}); only PCM and IEEE float are supported",
                tag_name(t)
            )))
        }
    };
    let expect = channels * usize::from(bits / 8);
    if block_align != expect {
        return Err(corrupt(format!(
            "block align {block_align} does not match {channels} channel(s) of {bits} bits"
        )));
    }
    Ok(Fmt {
        encoding,
        channels,
        rate,
    })
}

/// Walk the chunks; return the fmt chunk and the data chunk's bytes.
fn chunks(bytes: &[u8]) -> Result<(&[u8], &[u8]), MediaError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" {
        return Err(MediaError::NotWav("it does not start with a RIFF header"));
    }
    if &bytes[8..12] != b"WAVE" {
        return Err(MediaError::NotWav("the RIFF file is not of type WAVE"));
    }
    let mut fmt = None;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4);
        let body = pos + 8;
        let rest = bytes.len() - body;
        if id == b"data" {
            let fmt = fmt.ok_or_else(|| corrupt("the data chunk comes before the fmt chunk"))?;
            let len = if size == u32::MAX {
                rest
            } else {
                size as usize
            };
            if len > rest {
                return Err(corrupt(format!(
                    "the data chunk says {len} bytes but only {rest} follow"
                )));
            }
            return Ok((fmt, &bytes[body..body + len]));
        }
        let len = size as usize;
        if len > rest {
            return Err(corrupt(format!(
                "the {:?} chunk says {len} bytes but only {rest} follow",
                String::from_utf8_lossy(id)
            )));
        }
        if id == b"fmt " {
            fmt = Some(&bytes[body..body + len]);
        }
        // Chunks are padded to an even size.
        pos = body + len + (len & 1);
    }
    Err(corrupt(if fmt.is_some() {
        "no data chunk"
    } else {
        "no fmt chunk"
    }))
}

fn sample(e: Encoding, b: &[u8]) -> f32 {
    match e {
        Encoding::U8 => (f32::from(b[0]) - 128.0) / 128.0,
        Encoding::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0,
        Encoding::I24 => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
        Encoding::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
        Encoding::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Encoding::F64 => {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }
    }
}

fn width(e: Encoding) -> usize {
    match e {
        Encoding::U8 => 1,
        Encoding::I16 => 2,
        Encoding::I24 => 3,
        Encoding::I32 | Encoding::F32 => 4,
        Encoding::F64 => 8,
    }
}

/// The checked header and the data chunk's bytes.
fn header<'a>(bytes: &'a [u8], limits: &Limits) -> Result<(Fmt, &'a [u8]), MediaError> {
    limits.check_bytes(bytes.len())?;
    let (fmt, data) = chunks(bytes)?;
    let fmt = parse_fmt(fmt, limits)?;
    let frame = fmt.channels * width(fmt.encoding);
    if data.len() % frame != 0 {
        return Err(corrupt(format!(
            "the data ends in the middle of a sample frame ({} bytes, frames of {frame})",
            data.len()
        )));
    }
    let n = data.len() / frame;
    let seconds = n as f64 / f64::from(fmt.rate);
    if seconds > f64::from(limits.max_audio_seconds) {
        return Err(MediaError::AudioTooLong {
            seconds: seconds as f32,
            max: limits.max_audio_seconds,
        });
    }
    Ok((fmt, data))
}

/// Check a WAV file's structure and header against `limits` without decoding a
/// sample: exactly the refusals of [`decode_wav`], at the cost of walking the chunk
/// headers. For callers that can refuse a request before doing costlier setup.
pub fn check_wav(bytes: &[u8], limits: &Limits) -> Result<(), MediaError> {
    header(bytes, limits).map(|_| ())
}

/// Decode a WAV file to mono `f32` samples in [-1, 1] at its own sample rate.
pub fn decode_wav(bytes: &[u8], limits: &Limits) -> Result<Audio, MediaError> {
    let (fmt, data) = header(bytes, limits)?;
    let w = width(fmt.encoding);
    let frame = fmt.channels * w;
    let inv = 1.0 / fmt.channels as f32;
    let samples = data
        .chunks_exact(frame)
        .map(|f| {
            let sum: f32 = f.chunks_exact(w).map(|s| sample(fmt.encoding, s)).sum();
            sum * inv
        })
        .collect();
    Ok(Audio {
        samples,
        sample_rate: fmt.rate,
    })
}
