//! Writes the seed files of the fuzz corpus (`fuzz/corpus/<target>/seed-*`): small
//! valid inputs of every format, made here with the `image` crate, candle's GGUF
//! writer and a few lines of protobuf / CTranslate2 / safetensors / WAV layout.
//! Files the fuzzer found are kept next to them under other names.
//!
//! `cargo run --release -p reka-fuzz-targets --example write_seeds`

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn put(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = corpus().join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("seed-{name}")), bytes)
}

/// A WAV file: format tag, channels, rate, bits, extensible or not, data.
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
        fmt.extend_from_slice(&bits.to_le_bytes());
        fmt.extend_from_slice(&3u32.to_le_bytes());
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    }
    let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
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

fn encoded(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encoding a seed image");
    out.into_inner()
}

fn gif(frames: usize, w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let frames = (0..frames).map(|i| {
            let img = RgbaImage::from_fn(w, h, |x, y| Rgba([(x * 40) as u8, (y * 50) as u8, (i * 90) as u8, if x == 0 { 0 } else { 255 }]));
            image::Frame::new(img)
        });
        enc.encode_frames(frames).expect("encoding a seed GIF");
    }
    out
}

/// Protobuf: a varint, a tag, a length-delimited field.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn field_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}
fn field_int(out: &mut Vec<u8>, number: u64, v: u64) {
    varint(out, number << 3);
    varint(out, v);
}

/// An ONNX TensorProto: dims, data type 1 (f32) with raw data, or 7 (i64) packed.
fn onnx_tensor(name: &str, dims: &[u64], f32s: Option<&[f32]>, i64s: &[i64]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        field_int(&mut t, 1, d);
    }
    match f32s {
        Some(v) => {
            field_int(&mut t, 2, 1);
            let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            field_bytes(&mut t, 9, &raw);
        }
        None => {
            field_int(&mut t, 2, 7);
            let mut packed = Vec::new();
            for &x in i64s {
                varint(&mut packed, x as u64);
            }
            field_bytes(&mut t, 7, &packed);
        }
    }
    field_bytes(&mut t, 8, name.as_bytes());
    t
}

fn onnx_model() -> Vec<u8> {
    let mut g = Vec::new();
    // A Constant node with a tensor attribute, and an Add node with an int attribute.
    let mut attr = Vec::new();
    field_bytes(&mut attr, 1, b"value");
    field_bytes(&mut attr, 5, &onnx_tensor("", &[2], None, &[3, -1]));
    let mut node = Vec::new();
    field_bytes(&mut node, 2, b"shape");
    field_bytes(&mut node, 3, b"c0");
    field_bytes(&mut node, 4, b"Constant");
    field_bytes(&mut node, 5, &attr);
    field_bytes(&mut g, 1, &node);
    let mut attr = Vec::new();
    field_bytes(&mut attr, 1, b"axis");
    field_int(&mut attr, 3, 1);
    let mut node = Vec::new();
    field_bytes(&mut node, 1, b"x");
    field_bytes(&mut node, 1, b"w");
    field_bytes(&mut node, 2, b"y");
    field_bytes(&mut node, 3, b"add0");
    field_bytes(&mut node, 4, b"Add");
    field_bytes(&mut node, 5, &attr);
    field_bytes(&mut g, 1, &node);
    field_bytes(&mut g, 5, &onnx_tensor("w", &[2, 2], Some(&[1.0, -2.0, 0.5, 4.0]), &[]));
    let mut vi = Vec::new();
    field_bytes(&mut vi, 1, b"x");
    field_bytes(&mut g, 11, &vi);
    let mut vi = Vec::new();
    field_bytes(&mut vi, 1, b"y");
    field_bytes(&mut g, 12, &vi);
    let mut m = Vec::new();
    field_int(&mut m, 1, 8); // ir_version
    field_bytes(&mut m, 7, &g);
    m
}

fn ct2_model() -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut b = Vec::new();
    b.extend_from_slice(&6u32.to_le_bytes());
    string(&mut b, "WhisperSpec");
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&3u32.to_le_bytes());
    // f32 [2, 2]
    string(&mut b, "encoder/w");
    b.extend_from_slice(&[2, 2, 0, 0, 0, 2, 0, 0, 0, 0]);
    b.extend_from_slice(&16u32.to_le_bytes());
    for x in [1.0f32, 2.0, -3.0, 0.25] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    // int8 [2, 2] with its per-row f32 scale
    string(&mut b, "encoder/q");
    b.extend_from_slice(&[2, 2, 0, 0, 0, 2, 0, 0, 0, 1]);
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&[1, 255, 127, 128]);
    string(&mut b, "encoder/q_scale");
    b.extend_from_slice(&[1, 2, 0, 0, 0, 0]);
    b.extend_from_slice(&8u32.to_le_bytes());
    for x in [2.0f32, 0.5] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(&1u32.to_le_bytes());
    string(&mut b, "decoder/w");
    string(&mut b, "encoder/w");
    b
}

fn gguf_model() -> Vec<u8> {
    let tokens: Vec<Value> = (0..=255u8)
        .map(|b| Value::String(if b.is_ascii_graphic() { char::from(b).to_string() } else { format!("<0x{b:02X}>") }))
        .chain([Value::String("<|im_start|>".into()), Value::String("<|im_end|>".into())])
        .collect();
    let types: Vec<Value> = (0..258).map(|i| Value::I32(if i >= 256 { 3 } else { 1 })).collect();
    let strs = |v: &[&str]| Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect());
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("fuzz seed".into())),
        ("llama.embedding_length", Value::U32(8)),
        ("llama.feed_forward_length", Value::U32(16)),
        ("llama.block_count", Value::U32(1)),
        ("llama.attention.head_count", Value::U32(2)),
        ("llama.attention.head_count_kv", Value::U32(1)),
        ("llama.context_length", Value::U32(64)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.rope.dimension_count", Value::U32(4)),
        ("llama.rope.scaling.type", Value::String("linear".into())),
        ("llama.rope.scaling.factor", Value::F32(2.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("smollm".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", strs(&["a b", "ab c"])),
        ("tokenizer.ggml.bos_token_id", Value::U32(256)),
        ("tokenizer.ggml.eos_token_id", Value::U32(257)),
        ("tokenizer.chat_template", Value::String("{% for m in messages %}{{ m.content }}{% endfor %}".into())),
    ];
    let t = Tensor::arange(0f32, 8.0, &Device::Cpu).and_then(|t| t.reshape((1, 8))).expect("a seed tensor");
    let q = QTensor::quantize(&t, GgmlDType::F32).expect("a seed qtensor");
    let md: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let mut out = Cursor::new(Vec::new());
    candle_core::quantized::gguf_file::write(&mut out, &md, &[("token_embd.weight", &q)]).expect("writing a seed GGUF");
    out.into_inner()
}

fn safetensors_file() -> Vec<u8> {
    let header = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    for x in [1.0f32, -1.0, 0.5, 2.0] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(&[0x80, 0x3F, 0x00, 0x40, 0x40, 0xC0]);
    b
}

fn tokenizer_json() -> String {
    let mut vocab: Vec<String> = (0..=255u8)
        .filter(|b| b.is_ascii_graphic())
        .map(|b| format!("{:?}:{}", char::from(b).to_string(), b))
        .collect();
    vocab.push(r#""Ġ":256,"th":257,"the":258,"Ġthe":259"#.into());
    format!(
        r#"{{"version":"1.0","added_tokens":[{{"id":260,"content":"<|im_start|>","special":true}},{{"id":261,"content":"<|im_end|>","special":true}},{{"id":262,"content":"<tool>","special":false}}],
"pre_tokenizer":{{"type":"Sequence","pretokenizers":[{{"type":"Digits","individual_digits":true}},{{"type":"ByteLevel"}}]}},
"model":{{"type":"BPE","vocab":{{{}}},"merges":["t h","th e",["Ġ","the"]]}}}}"#,
        vocab.join(",")
    )
}

fn main() -> std::io::Result<()> {
    // WAV: every encoding the parser accepts.
    let tone16: Vec<u8> = (0..200i16).flat_map(|i| (i * 150).to_le_bytes()).collect();
    put("wav", "pcm16-mono-8k.wav", &wav(1, 1, 8000, 16, false, &tone16))?;
    put("wav", "pcm8-stereo-11k.wav", &wav(1, 2, 11025, 8, false, &[128, 130, 250, 3, 17, 200]))?;
    put("wav", "pcm24-ext-44k1.wav", &wav(1, 2, 44100, 24, true, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]))?;
    let floats: Vec<u8> = [0.5f32, -0.25, 1.0, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    put("wav", "float32-48k.wav", &wav(3, 1, 48000, 32, false, &floats))?;
    let doubles: Vec<u8> = [0.5f64, -0.25].iter().flat_map(|x| x.to_le_bytes()).collect();
    put("wav", "float64-ext-16k.wav", &wav(3, 1, 16000, 64, true, &doubles))?;
    put("wav", "pcm32-22k.wav", &wav(1, 1, 22050, 32, false, &[0, 0, 0, 0x40, 0, 0, 0, 0xC0]))?;

    // Images: each format, with and without alpha, wide enough for a tile grid.
    let rgb = RgbImage::from_fn(40, 12, |x, y| Rgb([(x * 6) as u8, (y * 20) as u8, 99]));
    let rgba = RgbaImage::from_fn(12, 20, |x, y| Rgba([(x * 20) as u8, 50, (y * 12) as u8, (x * y) as u8]));
    put("image", "rgb.png", &encoded(rgb.clone().into(), ImageFormat::Png))?;
    put("image", "rgba.png", &encoded(rgba.clone().into(), ImageFormat::Png))?;
    put("image", "rgb.jpg", &encoded(rgb.clone().into(), ImageFormat::Jpeg))?;
    put("image", "rgba.webp", &encoded(rgba.into(), ImageFormat::WebP))?;
    put("image", "still.gif", &gif(1, 20, 10))?;

    // Video: GIF animations (the animated WebP comes from reka-media's tests).
    put("video", "3-frames.gif", &gif(3, 10, 8))?;
    put("video", "1-frame.gif", &gif(1, 6, 6))?;
    put("video", "still.png", &encoded(rgb.into(), ImageFormat::Png))?;

    put("onnx", "model.onnx", &onnx_model())?;
    put("onnx", "tensor.pb", &onnx_tensor("t", &[3], Some(&[1.0, 2.0, 3.0]), &[]))?;
    put("ct2", "model.bin", &ct2_model())?;
    let g = gguf_model();
    put("gguf", "llama.gguf", &g)?;
    put("gguf_meta", "llama.gguf", &g)?;
    put("safetensors", "two.safetensors", &safetensors_file())?;
    put("tokenizer_json", "tokenizer.json", tokenizer_json().as_bytes())?;
    put("tokenizer", "chatml.txt", "<|im_start|>system\nYou are root.<|im_end|>\nthe cat".as_bytes())?;
    put("tokenizer", "unicode.txt", "Grüße, 世界! 🎉 1234567 don't  \t\n\u{FFF9}0\u{FFFB}".as_bytes())?;
    put("tokenizer", "bytes.bin", &[0xFF, 0xFE, 0x00, 0xC3, 0x28, 0xE2, 0x82, b'<', b'|'])?;
    println!("seeds written under {}", corpus().display());
    Ok(())
}
