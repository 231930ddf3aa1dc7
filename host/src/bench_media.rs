//! `reka-host bench-media`: what media cost a multimodal model, as one table.
//! Over the full path (HTTP → wasm preprocess → wasi:nn → encoders → prefill),
//! the time to the first streamed token of a chat request with no media, one
//! small image (1 tile), one large image (whole view + 4 tiles), a video (GIF,
//! sampled frames) and audio (WAV); and the encoders alone on the same shapes.

use crate::model::LoadedModel;
use crate::bench::LocalServer;
use crate::{manifest, nn};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What to measure.
pub struct MediaBenchSpec {
    pub manifest: PathBuf,
    pub model_name: String,
    /// Requests per row (the median is reported).
    pub repeats: usize,
}

/// A `w`×`h` PNG with a gradient.
fn png(w: u32, h: u32) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// An animated GIF of `n` 160×120 frames.
fn gif(n: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let frames = (0..n).map(|i| {
            let c = (i * 255 / n.max(1)) as u8;
            image::Frame::new(image::RgbaImage::from_pixel(160, 120, image::Rgba([c, 255 - c, 60, 255])))
        });
        enc.encode_frames(frames)?;
    }
    Ok(out)
}

/// `seconds` of a 16 kHz 16-bit mono tone as a WAV.
fn wav(seconds: f32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = (seconds * rate as f32) as u32;
    let mut b = Vec::with_capacity(44 + 2 * n as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00");
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(2 * rate).to_le_bytes());
    b.extend_from_slice(b"\x02\x00\x10\x00data");
    b.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let s = (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin() * 0.3;
        b.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
    }
    b
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Milliseconds to the first streamed event of one chat request.
fn first_token_ms(addr: &str, model: &str, part: Option<serde_json::Value>) -> Result<f64> {
    let mut content = vec![serde_json::json!({"type": "text", "text": "Describe this."})];
    content.extend(part);
    let body = serde_json::json!({
        "model": model, "messages": [{"role": "user", "content": content}],
        "max_tokens": 1, "temperature": 0, "stream": true
    })
    .to_string();
    let mut s = TcpStream::connect(addr)?;
    let t0 = Instant::now();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    for line in BufReader::new(s).lines() {
        let line = line?;
        if line.starts_with("data: {") {
            return Ok(t0.elapsed().as_secs_f64() * 1e3);
        }
        anyhow::ensure!(!line.contains("\"error\""), "the request failed: {line}");
    }
    anyhow::bail!("the stream carried no events")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the bench against `model` (a multimodal model) and prints the table.
pub fn run(model: LoadedModel, spec: &MediaBenchSpec) -> Result<()> {
    let towers = model.media.as_ref().context("bench-media needs a multimodal model (a .json config)")?;
    let encoders = towers.time_encoders(spec.repeats)?;
    let model = Arc::new(model);
    let app = manifest::App::load(&spec.manifest)?;
    let models = nn::Models::new(vec![(spec.model_name.clone(), model)])?;
    let server = LocalServer::start(app, models)?;
    let addr = server.addr.clone();
    let image = |url: String| serde_json::json!({"type": "image_url", "image_url": {"url": url}});
    let cases: Vec<(&str, Option<serde_json::Value>)> = vec![
        ("text only", None),
        ("image 200×150 (1 tile)", Some(image(data_url("image/png", &png(200, 150)?)))),
        ("image 1600×1200 (1 + 4 tiles)", Some(image(data_url("image/png", &png(1600, 1200)?)))),
        ("video, GIF of 24 frames", Some(serde_json::json!({"type": "video_url", "video_url": data_url("image/gif", &gif(24)?)}))),
        ("audio, 10 s WAV", Some(serde_json::json!({"type": "audio_url", "audio_url": data_url("audio/wav", &wav(10.0))}))),
    ];
    let mut rows = Vec::new();
    for (name, part) in cases {
        let mut times = Vec::new();
        for _ in 0..spec.repeats.max(1) {
            times.push(first_token_ms(&addr, &spec.model_name, part.clone())?);
        }
        rows.push((name, median(times)));
    }
    server.stop();
    println!("model {}, median of {} requests each\n", spec.model_name, spec.repeats.max(1));
    println!("| request (full path, streamed) | time to first token (ms) |");
    println!("|---|---:|");
    for (name, ms) in rows {
        println!("| {name} | {ms:.0} |");
    }
    println!("\n| encoder alone | ms |");
    println!("|---|---:|");
    for (name, ms) in encoders {
        println!("| {name} | {ms:.0} |");
    }
    Ok(())
}
