//! Prints whether each seed of the corpus parses (a seed that is refused only
//! exercises the refusal), for checking the seeds after `write_seeds`.
//!
//! `cargo run --release -p reka-fuzz-targets --example check_seeds`

use std::io::Cursor;
use std::path::Path;

fn main() {
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let read = |t: &str, n: &str| std::fs::read(c.join(t).join(format!("seed-{n}"))).unwrap_or_default();
    let lim = reka_media::Limits::default();
    for n in ["pcm16-mono-8k.wav", "pcm8-stereo-11k.wav", "pcm24-ext-44k1.wav", "float32-48k.wav", "float64-ext-16k.wav", "pcm32-22k.wav"] {
        println!("wav {n}: {:?}", reka_media::decode_wav(&read("wav", n), &lim).map(|a| a.samples.len()));
    }
    let spec = reka_media::ImageSpec { size: 16, mean: [0.5; 3], std: [0.25; 3], max_tiles: 4 };
    for n in ["rgb.png", "rgba.png", "rgb.jpg", "rgba.webp", "still.gif", "animated.webp"] {
        println!("image {n}: {:?}", reka_media::image_tiles(&read("image", n), &spec, &lim).map(|p| p.n));
    }
    for n in ["3-frames.gif", "1-frame.gif", "animated.webp", "still.png"] {
        println!("video {n}: {:?}", reka_media::video_frames(&read("video", n), 3, &spec, &lim).map(|p| p.n));
    }
    println!("onnx: {:?}", reka_encoders::onnx::Graph::from_model_bytes(&read("onnx", "model.onnx")).map(|g| (g.nodes.len(), g.initializers.len())));
    println!("onnx tensor: {:?}", reka_encoders::onnx::parse_tensor(&read("onnx", "tensor.pb")).map(|t| t.numel()));
    let ct2 = read("ct2", "model.bin");
    println!("ct2: {:?}", reka_encoders::ct2::Ct2Model::from_reader(Cursor::new(&ct2), ct2.len() as u64, |_| true).map(|m| m.all_names));
    println!("gguf: {:?}", reka_host::model::gguf::read_header("x", &mut Cursor::new(read("gguf_meta", "llama.gguf"))).map(|h| h.cfg.num_layers));
    let st = c.join("safetensors/seed-two.safetensors");
    println!("safetensors: {:?}", reka_host::model::st_reader::Checkpoint::open(&[st]).map(|c| c.shape("a").map(<[usize]>::to_vec)));
    let tj: serde_json::Value = serde_json::from_slice(&read("tokenizer_json", "tokenizer.json")).unwrap_or_default();
    println!("tokenizer.json: {:?}", reka_host::model::tokenizer_json::vocab_spec(&tj, 600).map(|v| v.merges.len()));
}
