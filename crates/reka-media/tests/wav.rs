//! WAV decoding: every accepted encoding, channel mixing, and the refusals.

#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

use reka_media::{decode_wav, Limits, MediaError};

/// A WAV file: `tag`, channels, rate, bits, extensible wrapper or not, raw data.
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, extensible: bool, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&(if extensible { 0xFFFE } else { tag }).to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes()); // valid bits
        fmt.extend_from_slice(&0u32.to_le_bytes()); // channel mask
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    }
    let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
    // An odd-sized chunk before fmt exercises padding.
    out.extend_from_slice(b"LIST\x03\0\0\0abc\0");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    let riff = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    out
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

fn decode(bytes: &[u8]) -> Vec<f32> {
    let a = decode_wav(bytes, &Limits::default()).unwrap();
    assert_eq!(a.sample_rate, 8000);
    a.samples
}

#[test]
fn pcm_8_bit_unsigned() {
    close(
        &decode(&wav(1, 1, 8000, 8, false, &[128, 255, 0, 192])),
        &[0.0, 127.0 / 128.0, -1.0, 0.5],
    );
}

#[test]
fn pcm_16_24_32_bit_signed() {
    let d16: Vec<u8> = [0i16, 16384, -32768]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    close(
        &decode(&wav(1, 1, 8000, 16, false, &d16)),
        &[0.0, 0.5, -1.0],
    );
    let d24 = [0, 0, 0x40, 0, 0, 0x80, 0xFF, 0xFF, 0xFF];
    close(
        &decode(&wav(1, 1, 8000, 24, false, &d24)),
        &[0.5, -1.0, -1.0 / 8_388_608.0],
    );
    let d32: Vec<u8> = [i32::MIN, 1 << 30]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    close(&decode(&wav(1, 1, 8000, 32, false, &d32)), &[-1.0, 0.5]);
}

#[test]
fn ieee_float_32_and_64() {
    let f32s: Vec<u8> = [0.25f32, -0.75]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    close(&decode(&wav(3, 1, 8000, 32, false, &f32s)), &[0.25, -0.75]);
    let f64s: Vec<u8> = [0.125f64, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    close(&decode(&wav(3, 1, 8000, 64, false, &f64s)), &[0.125, -1.0]);
}

#[test]
fn extensible_pcm_and_float() {
    let d16: Vec<u8> = [16384i16, -16384]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    close(&decode(&wav(1, 1, 8000, 16, true, &d16)), &[0.5, -0.5]);
    let f32s: Vec<u8> = [0.5f32].iter().flat_map(|v| v.to_le_bytes()).collect();
    close(&decode(&wav(3, 1, 8000, 32, true, &f32s)), &[0.5]);
}

#[test]
fn channels_are_mixed_to_mono_by_the_mean() {
    // Three channels, two frames.
    let d: Vec<u8> = [16384i16, 0, -16384, 32767, 32767, 32767]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    close(
        &decode(&wav(1, 3, 8000, 16, false, &d)),
        &[0.0, 32767.0 / 32768.0],
    );
}

#[test]
fn unsupported_encodings_are_named() {
    let alaw = wav(6, 1, 8000, 8, false, &[0; 4]);
    let e = decode_wav(&alaw, &Limits::default()).unwrap_err();
    assert!(matches!(e, MediaError::UnsupportedWav(_)));
    assert!(
        e.to_string()
            .starts_with("unsupported WAV encoding: format 0x0006 (A-law)"),
        "{e}"
    );
    let pcm12 = wav(1, 1, 8000, 12, false, &[0; 4]);
    let e = decode_wav(&pcm12, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("12-bit PCM"), "{e}");
    let f16 = wav(3, 1, 8000, 16, false, &[0; 4]);
    assert!(matches!(
        decode_wav(&f16, &Limits::default()),
        Err(MediaError::UnsupportedWav(_))
    ));
}

#[test]
fn zero_channels_or_rate_are_refused() {
    let mut w = wav(1, 1, 8000, 16, false, &[0; 4]);
    // fmt chunk body starts after RIFF header (12), LIST chunk (12), "fmt " + size (8).
    w[34..36].copy_from_slice(&0u16.to_le_bytes());
    let e = decode_wav(&w, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("0 channels"), "{e}");
    let mut w = wav(1, 1, 8000, 16, false, &[0; 4]);
    w[36..40].copy_from_slice(&0u32.to_le_bytes());
    let e = decode_wav(&w, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("0 Hz"), "{e}");
}

#[test]
fn truncated_and_non_wav_files_are_refused() {
    let full = wav(1, 2, 8000, 16, false, &[1; 400]);
    for cut in [full.len() - 1, full.len() - 100, 50, 30, 11] {
        let e = decode_wav(&full[..cut], &Limits::default()).unwrap_err();
        assert!(
            matches!(e, MediaError::CorruptWav(_) | MediaError::NotWav(_)),
            "cut at {cut}: {e}"
        );
    }
    let e = decode_wav(&full[..full.len() - 1], &Limits::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("the WAV file is truncated or corrupt"),
        "{e}"
    );
    assert!(matches!(
        decode_wav(b"not a wav file at all", &Limits::default()),
        Err(MediaError::NotWav(_))
    ));
    // A frame cut in the middle, with a streamed (unknown) data size.
    let mut streamed = wav(1, 2, 8000, 16, false, &[1; 6]);
    let at = streamed.len() - 10;
    streamed[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_wav(&streamed, &Limits::default()),
        Err(MediaError::CorruptWav(_))
    ));
    streamed.extend_from_slice(&[1, 1]);
    assert_eq!(
        decode_wav(&streamed, &Limits::default())
            .unwrap()
            .samples
            .len(),
        2
    );
}

#[test]
fn too_long_audio_is_refused_before_decoding() {
    // 95.2 s of 8-bit mono at 1 kHz.
    let w = wav(1, 1, 1000, 8, false, &vec![128; 95_200]);
    let e = decode_wav(&w, &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the audio is 95.2 s long; at most 30 s are accepted"
    );
    let tiny = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    let e = decode_wav(&w, &tiny).unwrap_err();
    assert!(
        matches!(e, MediaError::TooManyBytes { max: 100, .. }),
        "{e}"
    );
}

/// The hostile headers of issue 15: sample rates of 5e8 to 2^32−1 Hz once overflowed
/// the resampler's table or cost seconds. Every header value that drives work is
/// refused, with a message naming it, before a sample is decoded or resampled; each
/// refusal takes well under a millisecond (checked here at 50 ms, for loaded machines).
#[test]
fn hostile_header_values_are_refused_before_any_work() {
    let limits = Limits::default();
    let at_rate = |rate: u32| {
        let mut w = wav(1, 1, 8000, 16, false, &[0; 4000]);
        w[36..40].copy_from_slice(&rate.to_le_bytes());
        w
    };
    for rate in [500_000_000, 4_000_000_000, u32::MAX, 0, 999, 192_001] {
        let t = std::time::Instant::now();
        let e = reka_media::audio_features(&at_rate(rate), 80, &limits).unwrap_err();
        assert!(t.elapsed().as_millis() < 50, "{rate} Hz took {:?}", t.elapsed());
        assert!(matches!(e, MediaError::SampleRate { .. }), "{rate}: {e}");
        assert_eq!(
            e.to_string(),
            format!("the WAV header says a sample rate of {rate} Hz; 1000 to 192000 Hz are accepted")
        );
    }
    // The bounds themselves are accepted.
    for rate in [1_000, 192_000] {
        assert!(reka_media::audio_features(&at_rate(rate), 80, &limits).is_ok(), "{rate}");
    }
    // 65535 channels of 8 bits (a block align that matches); 33 channels.
    for channels in [65_535u16, 33] {
        let w = wav(1, channels, 8000, 8, false, &vec![128; usize::from(channels)]);
        let e = decode_wav(&w, &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the WAV header says {channels} channels; 1 to 32 are accepted")
        );
    }
    assert_eq!(decode_wav(&wav(1, 32, 8000, 8, false, &[128; 64]), &limits).unwrap().samples.len(), 2);
    // A data chunk that claims 4 GB (but not the streamed 0xFFFFFFFF) in a 4 KB file.
    let mut w = wav(1, 1, 8000, 16, false, &[0; 4000]);
    let at = w.len() - 4004;
    w[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let e = decode_wav(&w, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the WAV file is truncated or corrupt: the data chunk says 4294967280 bytes but only 4000 follow"
    );
    // A chunk before fmt that claims to be longer than the file.
    let mut w = wav(1, 1, 8000, 16, false, &[0; 16]);
    w[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode_wav(&w, &limits), Err(MediaError::CorruptWav(_))));
}

/// `check_wav` refuses what `decode_wav` refuses, with the same message, and
/// accepts what it decodes.
#[test]
fn check_wav_agrees_with_decode_wav() {
    let limits = Limits::default();
    let good = wav(1, 2, 8000, 16, false, &[1; 400]);
    let mut files = vec![good.clone(), good[..good.len() - 1].to_vec(), good[..30].to_vec()];
    for (at, v) in [(34, 0u32), (36, 0), (36, 4_000_000_000), (34, 0xFFFF)] {
        let mut w = good.clone();
        w[at..at + 4].copy_from_slice(&v.to_le_bytes());
        files.push(w);
    }
    files.push(wav(1, 1, 1000, 8, false, &vec![128; 95_200]));
    for f in &files {
        let checked = reka_media::check_wav(f, &limits).map_err(|e| e.to_string());
        let decoded = decode_wav(f, &limits).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(checked, decoded);
    }
    assert!(reka_media::check_wav(&good, &limits).is_ok());
}
