//! End to end over a real socket: the default multimodal model (SmolLM2 with
//! DINOv2-small and Whisper tiny.en, random projectors) answers requests with an
//! image, a GIF as video and a WAV, streaming, with media tokens in `usage`;
//! bad media get a 400 that names the problem, and the server keeps serving.
//! The media are drawn here with the `image` crate and a sine generator.

mod support;

use base64::Engine as _;
use serde_json::{json, Value};
use support::Server;

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A `w`×`h` PNG: a colour gradient with a disc.
fn png(w: u32, h: u32, tint: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
        if dx * dx + dy * dy < (w.min(h) as f32 / 4.0).powi(2) {
            image::Rgb(tint)
        } else {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG");
    out.into_inner()
}

/// An animated GIF of `n` frames, each a different solid colour.
fn gif(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let frames = (0..n).map(|i| {
            let c = [(i * 40) as u8, 255 - (i * 30) as u8, 90];
            let img = image::RgbaImage::from_pixel(64, 48, image::Rgba([c[0], c[1], c[2], 255]));
            image::Frame::new(img)
        });
        enc.encode_frames(frames).expect("encoding a GIF");
    }
    out
}

/// A 16-bit mono WAV of `seconds` of a rising tone at `rate` Hz.
fn wav(seconds: f32, rate: u32) -> Vec<u8> {
    let n = (seconds * rate as f32) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + n * 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(n * 2).to_le_bytes());
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let s = (std::f32::consts::TAU * (300.0 + 200.0 * t) * t).sin() * 0.3;
        b.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
    }
    b
}

fn chat(parts: Value, stream: bool) -> Value {
    json!({
        "model": "smollm2-omni",
        "messages": [{"role": "user", "content": parts}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": stream,
        "stream_options": {"include_usage": true}
    })
}

/// The text and the usage of a streamed answer.
fn streamed(s: &Server, body: &Value) -> (String, Value) {
    let r = s.post_json("/v1/chat/completions", body);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut text = String::new();
    let mut usage = Value::Null;
    for d in r.sse_data() {
        if d == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&d).expect("SSE data is JSON");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
        if !v["usage"].is_null() {
            usage = v["usage"].clone();
        }
    }
    (text, usage)
}

fn error_message(s: &Server, parts: Value) -> String {
    let r = s.post_json("/v1/chat/completions", &chat(parts, false));
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    v["error"]["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn image_video_and_audio_are_answered_with_media_tokens_in_usage() {
    let s = Server::start_model(&support::multimodal_model(), "smollm2-omni", &[]);

    let models = s.get("/v1/models").json();
    assert_eq!(models["data"][0]["id"], "smollm2-omni");
    assert_eq!(models["data"][0]["input_modalities"], json!(["text", "image", "video", "audio"]));

    // An image larger than one tile: a whole view plus a 2×1 grid of tiles, 64 tokens each.
    let image = chat(
        json!([{"type": "text", "text": "What is in this picture?"},
               {"type": "image_url", "image_url": {"url": data_url("image/png", &png(448, 224, [250, 20, 20]))}}]),
        true,
    );
    let (text, usage) = streamed(&s, &image);
    assert!(!text.is_empty());
    let image_tokens = usage["prompt_tokens_details"]["image_tokens"].as_u64().unwrap_or(0);
    assert_eq!(image_tokens, 3 * 64, "{usage}");
    assert!(usage["prompt_tokens"].as_u64().unwrap_or(0) > image_tokens);

    // The picture matters: another disc colour, another greedy answer's logits path.
    let other = chat(
        json!([{"type": "text", "text": "What is in this picture?"},
               {"type": "image_url", "image_url": {"url": data_url("image/png", &png(448, 224, [20, 20, 250]))}}]),
        true,
    );
    let (text_other, _) = streamed(&s, &other);
    let (text_again, _) = streamed(&s, &image);
    assert_eq!(text, text_again, "greedy answers to the same image are the same");
    assert_ne!(text, text_other, "different images give different answers");

    // A GIF as video: 8 frames sampled from 12, 16 tokens each.
    let video = chat(
        json!([{"type": "video_url", "video_url": {"url": data_url("image/gif", &gif(12))}},
               {"type": "text", "text": "Describe the video."}]),
        true,
    );
    let (text, usage) = streamed(&s, &video);
    assert!(!text.is_empty());
    assert_eq!(usage["prompt_tokens_details"]["video_tokens"], 8 * 16, "{usage}");

    // A WAV at 22.05 kHz (resampled to 16 kHz): 2 s = 200 log-mel frames, 8 per token.
    let audio = chat(
        json!([{"type": "input_audio", "input_audio": {"data": base64::engine::general_purpose::STANDARD.encode(wav(2.0, 22050)), "format": "wav"}},
               {"type": "text", "text": "What do you hear?"}]),
        true,
    );
    let (text, usage) = streamed(&s, &audio);
    assert!(!text.is_empty());
    assert_eq!(usage["prompt_tokens_details"]["audio_tokens"], 25, "{usage}");

    // Several media in one message, and media in two turns.
    let small = data_url("image/png", &png(200, 150, [0, 0, 0]));
    let body = json!({
        "model": "smollm2-omni",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": small}, {"type": "text", "text": "and"}, {"type": "image_url", "image_url": small}]},
            {"role": "assistant", "content": "Two dark squares."},
            {"role": "user", "content": [{"type": "audio_url", "audio_url": data_url("audio/wav", &wav(1.0, 16000))}]}
        ],
        "max_tokens": 4, "temperature": 0
    });
    let r = s.post_json("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.json()["usage"]["prompt_tokens_details"];
    assert_eq!((d["image_tokens"].as_u64(), d["audio_tokens"].as_u64()), (Some(128), Some(13)), "{d}");
}

#[test]
fn bad_media_get_a_400_naming_the_problem_and_the_server_keeps_serving() {
    let mut s = Server::start_model(&support::multimodal_model(), "smollm2-omni", &[]);
    let image = |bytes: &[u8]| json!([{"type": "image_url", "image_url": {"url": data_url("image/png", bytes)}}]);

    let good = png(100, 80, [0, 200, 0]);
    let m = error_message(&s, image(&good[..good.len() / 2]));
    assert!(m.contains("truncated") || m.contains("corrupt"), "{m}");

    // A PNG header that claims 50000×50000 pixels: refused before decoding.
    let mut bomb = good.clone();
    bomb[16..20].copy_from_slice(&50000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&50000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let m = error_message(&s, image(&bomb));
    assert!(m.contains("50000") && m.contains("pixels"), "{m}");

    let m = error_message(&s, image(b"BM\x00\x00 this is not an image format we read"));
    assert!(m.contains("unsupported image format"), "{m}");

    let m = error_message(
        &s,
        json!([{"type": "input_audio", "input_audio": {"data": base64::engine::general_purpose::STANDARD.encode(wav(31.0, 16000)), "format": "wav"}}]),
    );
    assert!(m.contains("31") && m.contains("30 s"), "{m}");

    let m = error_message(&s, json!([{"type": "image_url", "image_url": "https://images.example.com/cat.png"}]));
    assert!(m.contains("images.example.com") && m.contains("allowed_outbound_hosts"), "{m}");

    let m = error_message(&s, json!([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}}]));
    assert!(m.contains("mp3"), "{m}");

    // Still serving, and still right.
    assert!(s.alive());
    let r = s.post_json("/v1/chat/completions", &chat(image(&good), false));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["usage"]["prompt_tokens_details"]["image_tokens"], 64);
}

/// Serves `body` at `/media` (and 404 elsewhere) on a loopback port, for
/// `requests` requests; returns the port.
fn serve_once(body: Vec<u8>, requests: usize) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests).flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            while reader.read_line(&mut String::new()).map(|n| n > 2).unwrap_or(false) {}
            let mut w = &stream;
            if line.starts_with("GET /media ") {
                let _ = write!(w, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: image/png\r\n\r\n", body.len());
                let _ = w.write_all(&body);
            } else {
                let _ = write!(w, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
            }
        }
    });
    port
}

#[test]
fn media_urls_are_fetched_from_allowed_hosts_only() {
    let port = serve_once(png(64, 64, [9, 9, 200]), 2);
    let dir = std::env::temp_dir().join(format!("reka-mm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = dir.join("spin.toml");
    let app = support::root().join("target/wasm/reka-app.wasm");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"mm\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"reka\"\n\
             [component.reka]\nsource = {:?}\nallowed_outbound_hosts = [\"http://127.0.0.1:{port}\"]\n",
            app.display().to_string()
        ),
    )
    .expect("writing the manifest");
    let s = Server::start_manifest_model(&manifest, &support::multimodal_model(), "smollm2-omni");
    let url = |path: &str| json!([{"type": "image_url", "image_url": {"url": format!("http://127.0.0.1:{port}{path}")}}]);
    let r = s.post_json("/v1/chat/completions", &chat(url("/media"), false));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["usage"]["prompt_tokens_details"]["image_tokens"], 64);
    let m = error_message(&s, url("/missing.png"));
    assert!(m.contains("HTTP 404"), "{m}");
    // Another port of the same host is not in the list.
    let m = error_message(&s, json!([{"type": "image_url", "image_url": format!("http://127.0.0.1:{}/media", port.wrapping_add(1))}]));
    assert!(m.contains("allowed_outbound_hosts"), "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_text_model_refuses_media_by_name() {
    let s = Server::start();
    let models = s.get("/v1/models").json();
    assert_eq!(models["data"][0]["input_modalities"], json!(["text"]));
    let mut body = chat(json!([{"type": "image_url", "image_url": data_url("image/png", &png(32, 32, [1, 2, 3]))}]), false);
    body["model"] = json!("smollm2-135m");
    let r = s.post_json("/v1/chat/completions", &body);
    assert_eq!(r.status, 400, "{}", r.body);
    let m = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(m.contains("does not read images"), "{m}");
}

/// CRC-32 (IEEE), for the forged PNG header.
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}
