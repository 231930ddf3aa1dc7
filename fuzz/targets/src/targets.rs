//! The target bodies. Each calls the parser as the server does, with limits
//! tightened where the limit only scales the work (pixels, frames), so that one
//! execution stays in the milliseconds; every branch of the parsers stays
//! reachable.

use std::io::Cursor;
use std::sync::OnceLock;

use reka_media::{ImageSpec, Limits};

fn small_limits() -> Limits {
    Limits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
        max_frames: 32,
        max_video_pixels: 1 << 22,
        ..Limits::default()
    }
}

fn spec(max_tiles: u32) -> ImageSpec {
    ImageSpec { size: 16, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], max_tiles }
}

/// WAV → mono → resampled to 16 kHz → log-mel, as the preprocess component does
/// (default limits: the header checks are the point).
pub fn wav(data: &[u8]) {
    let limits = Limits::default();
    let checked = reka_media::check_wav(data, &limits).map_err(|e| e.to_string());
    let decoded = reka_media::decode_wav(data, &limits).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(checked, decoded, "check_wav and decode_wav disagree");
    if checked.is_ok() {
        let _ = reka_media::audio_features(data, 80, &limits);
    }
}

/// PNG / JPEG / WebP / GIF → tiles, both tilings (grid and Reka Edge's UHD).
pub fn image(data: &[u8]) {
    let limits = small_limits();
    let _ = reka_media::image_tiles(data, &spec(4), &limits);
    let _ = reka_media::uhd::image_tiles(data, &spec(4), 8, &limits);
}

/// Animated GIF / WebP (or a still image) → sampled frames, both samplings; the
/// input also split in two as a frame list.
pub fn video(data: &[u8]) {
    let limits = small_limits();
    let _ = reka_media::video_frames(data, 3, &spec(1), &limits);
    let _ = reka_media::uhd::video_frames(data, 3, &spec(1), &limits);
    let (a, b) = data.split_at(data.len() / 2);
    let _ = reka_media::video_from_images(&[a, b], 2, &spec(1), &limits);
}

/// An ONNX ModelProto: the graph, and every initializer's and constant's values.
pub fn onnx(data: &[u8]) {
    let _ = reka_encoders::onnx::parse_tensor(data);
    let Ok(g) = reka_encoders::onnx::Graph::from_model_bytes(data) else { return };
    for t in g.initializers.values() {
        let _ = (t.numel(), t.f32s(), t.i64s(), t.scalar());
    }
    for n in &g.nodes {
        for out in &n.outputs {
            if let Some(t) = g.constant(out) {
                let _ = (t.numel(), t.f32s(), t.scalar());
            }
        }
        let _ = g.producer(&n.name);
        let _ = g.consumers(&n.name).count();
    }
}

/// A CTranslate2 `model.bin`, every variable kept, then read as f32 and ints.
pub fn ct2(data: &[u8]) {
    let Ok(m) = reka_encoders::ct2::Ct2Model::from_reader(Cursor::new(data), data.len() as u64, |_| true) else {
        return;
    };
    for name in m.all_names.iter().chain(m.aliases.keys()) {
        let _ = m.f32_values(name);
        let _ = m.ints(name);
        let _ = m.int_scalar(name);
    }
}

/// A GGUF header as candle reads it (metadata and tensor infos, no data).
pub fn gguf(data: &[u8]) {
    let _ = candle_core::quantized::gguf_file::Content::read(&mut Cursor::new(data));
}

/// GPT-2's byte-to-character table: printable Latin-1 bytes stand for
/// themselves, the others for U+0100 upwards in byte order.
fn byte_char(b: u8) -> char {
    let printable = |x: u8| (b'!'..=b'~').contains(&x) || (0xA1..=0xAC).contains(&x) || x >= 0xAE;
    if printable(b) {
        char::from(b)
    } else {
        let n = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(0x100 + n).unwrap_or('?')
    }
}

/// A small byte-level BPE vocabulary built here: the 256 byte tokens, a few
/// merges, ChatML's role markers as control tokens.
fn small_tokenizer() -> &'static reka_tokenizer::Tokenizer {
    static TOK: OnceLock<reka_tokenizer::Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
        let mut merges = Vec::new();
        for (l, r) in [("t", "h"), ("th", "e"), ("Ġ", "t"), ("Ġt", "he"), ("i", "n"), ("a", "n"), ("an", "d")] {
            merges.push(format!("{l} {r}"));
            tokens.push(format!("{l}{r}"));
        }
        let mut token_types = vec![1; tokens.len()];
        for s in ["<|im_start|>", "<|im_end|>", "<|endoftext|>"] {
            tokens.push(s.to_string());
            token_types.push(3);
        }
        let spec = reka_tokenizer::VocabSpec { model: "gpt2".into(), pre: "smollm".into(), tokens, merges, token_types };
        match reka_tokenizer::Tokenizer::new(&spec) {
            Ok(t) => t,
            Err(e) => panic!("the fuzz vocabulary is invalid: {e}"),
        }
    })
}

/// Request text through the tokenizer: encoded with and without special
/// parsing, marked literal, and the bytes read as ids decoded (also incrementally).
pub fn tokenizer(data: &[u8]) {
    let tok = small_tokenizer();
    let text = String::from_utf8_lossy(data);
    let ids = tok.encode(&text, false);
    assert_eq!(tok.decode(&ids, false), text, "text does not round-trip");
    let _ = tok.encode(&text, true);
    let _ = tok.encode_marked(&tok.mark_literal(&text));
    let raw: Vec<u32> = data.chunks(2).map(|c| u32::from(c[0]) | u32::from(*c.get(1).unwrap_or(&0)) << 8).collect();
    let _ = tok.decode(&raw, true);
    let mut inc = reka_tokenizer::IncrementalDecoder::new(false);
    for &id in &raw {
        let _ = inc.push(tok, id);
    }
    let _ = inc.finish();
}

/// A GGUF file's header and metadata as reka-host reads them (architecture,
/// decoder config, vocabulary, model info).
#[cfg(feature = "host")]
pub fn gguf_meta(data: &[u8]) {
    let _ = reka_host::model::gguf::read_header("fuzz", &mut Cursor::new(data));
}

/// A safetensors file's header as reka-host reads it (the file is written to a
/// temporary path: the reader works on files).
#[cfg(feature = "host")]
pub fn safetensors(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "reka-fuzz-{}-{}.safetensors",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(ck) = reka_host::model::st_reader::Checkpoint::open(std::slice::from_ref(&path)) {
        let _ = ck.main_dtype();
        for name in ["a", "b", "model.embed_tokens.weight"] {
            if let Some(shape) = ck.shape(name).map(<[usize]>::to_vec) {
                if let Ok(v) = ck.f32s(name, &shape) {
                    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                    assert_eq!(Some(v.len()), n, "tensor {name} of shape {shape:?} read as {} values", v.len());
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// A Hugging Face `tokenizer.json` → vocabulary → tokenizer → a sentence.
#[cfg(feature = "host")]
pub fn tokenizer_json(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(spec) = reka_host::model::tokenizer_json::vocab_spec(&v, 600) else { return };
    if let Ok(tok) = reka_tokenizer::Tokenizer::new(&spec) {
        let ids = tok.encode("The cat <|im_start|>sat 123 on the mat.", true);
        let _ = tok.decode(&ids, false);
    }
}
