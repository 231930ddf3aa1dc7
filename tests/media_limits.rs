//! End-to-end tests (over a real socket): media limits. Crafted WAV headers (issue
//! 15: sample rates of 5e8 to 2^32−1 Hz trapped the guest with `capacity overflow`,
//! or cost 2.7 CPU-seconds for a 4 KB request) are each answered with a 400 and an
//! OpenAI-style JSON error that names the header value, in under 10 ms, and the
//! server keeps serving. The WAVs are written here byte by byte.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use support::Server;

/// A 4 KB WAV: 16-bit mono PCM at 8 kHz, 2000 samples of a 440 Hz tone.
fn wav() -> Vec<u8> {
    let (rate, n) = (8000u32, 2000u32);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + n * 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM, at 20
    b.extend_from_slice(&1u16.to_le_bytes()); // channels, at 22
    b.extend_from_slice(&rate.to_le_bytes()); // sample rate, at 24
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes()); // block align, at 32
    b.extend_from_slice(&16u16.to_le_bytes()); // bits, at 34
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(n * 2).to_le_bytes()); // data size, at 40
    for i in 0..n {
        let s = (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin() * 0.3;
        b.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
    }
    b
}

/// `wav()` with the bytes at `at` replaced.
fn patched(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut w = wav();
    w[at..at + bytes.len()].copy_from_slice(bytes);
    w
}

fn request(wav: &[u8]) -> Value {
    json!({
        "model": "smollm2-omni",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this sound?"},
            {"type": "input_audio", "input_audio": {"data": base64::engine::general_purpose::STANDARD.encode(wav), "format": "wav"}}
        ]}],
        "max_tokens": 4,
        "temperature": 0
    })
}

#[test]
fn crafted_wav_headers_get_a_400_in_under_10_ms_and_the_server_serves_on() {
    let mut s = Server::start_model(&support::multimodal_model(), "smollm2-omni", &[]);
    // The well-formed WAV is answered (and warms the server up).
    let r = s.post_json("/v1/chat/completions", &request(&wav()));
    assert_eq!(r.status, 200, "{}", r.body);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("rate 5e8", patched(24, &500_000_000u32.to_le_bytes()), "sample rate of 500000000 Hz"),
        ("rate 4e9", patched(24, &4_000_000_000u32.to_le_bytes()), "sample rate of 4000000000 Hz"),
        ("rate 2^32-1", patched(24, &u32::MAX.to_le_bytes()), "sample rate of 4294967295 Hz"),
        ("rate 0", patched(24, &0u32.to_le_bytes()), "sample rate of 0 Hz"),
        ("0 channels", patched(22, &0u16.to_le_bytes()), "0 channels"),
        ("65535 channels", patched(22, &65_535u16.to_le_bytes()), "65535 channels"),
        ("data of 4 GB", patched(40, &0xFFFF_FFF0u32.to_le_bytes()), "4294967280 bytes but only 4000 follow"),
        ("fmt cut short", wav()[..30].to_vec(), "truncated or corrupt"),
        ("data cut short", wav()[..2000].to_vec(), "truncated or corrupt"),
    ];
    for (name, bytes, expect) in &cases {
        let body = request(bytes);
        let mut fastest = Duration::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            let r = s.post_json("/v1/chat/completions", &body);
            fastest = fastest.min(t.elapsed());
            assert_eq!(r.status, 400, "{name}: {}", r.body);
            let v = r.json();
            assert_eq!(v["error"]["type"], "invalid_request_error", "{name}: {v}");
            let m = v["error"]["message"].as_str().unwrap_or_default();
            assert!(m.starts_with("audio: ") && m.contains(expect), "{name}: {m}");
            for leak in ["backtrace", "wasm", "panicked", "overflow"] {
                assert!(!r.body.contains(leak), "{name}: the body mentions {leak:?}: {}", r.body);
            }
        }
        println!("{name}: 400 in {fastest:?}");
        assert!(fastest < Duration::from_millis(10), "{name}: the fastest of 5 answers took {fastest:?}");
    }

    // Still serving, and still right.
    assert!(s.alive());
    let r = s.post_json("/v1/chat/completions", &request(&wav()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["usage"]["prompt_tokens_details"]["audio_tokens"].as_u64() > Some(0), "{}", r.body);
}
