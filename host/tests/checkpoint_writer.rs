//! The size presets and the random-checkpoint writer: every preset's decoder
//! parses as a Llama config with the expected size (Reka Edge's from its
//! Yasa2 `text_config`); `reka-tiny` written in several shards has
//! a consistent safetensors layout and index, is deterministic in its seed, and
//! loads and runs in the host's own checkpoint loader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reka_host::checkpoint_writer::{write_checkpoint, Options};
use reka_host::model::config::HfLlamaConfig;
use reka_host::presets::{self, WeightDtype};
use serde_json::Value;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("reka-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small enough that `reka-tiny`'s tensors fall into several shards.
const TINY_SHARD: u64 = 40_000;

fn write_tiny(tag: &str, seed: u64, dtype: WeightDtype) -> TempDir {
    let dir = TempDir::new(tag);
    let config = presets::config_json("reka-tiny").expect("preset");
    let opts = Options {
        seed,
        dtype,
        shard_bytes: TINY_SHARD,
        progress: false,
    };
    write_checkpoint(&config, &dir.0, &opts).expect("checkpoint written");
    dir
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// A safetensors file's header and the length of its data section.
fn header(path: &Path) -> (serde_json::Map<String, Value>, u64) {
    let bytes = std::fs::read(path).expect("shard");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    assert_eq!((8 + n) % 8, 0, "{}: data not 8-byte aligned", path.display());
    let text = std::str::from_utf8(&bytes[8..8 + n]).expect("utf-8 header");
    let v: Value = serde_json::from_str(text.trim_end()).expect("header JSON");
    (v.as_object().expect("header object").clone(), (bytes.len() - 8 - n) as u64)
}

#[test]
fn every_preset_parses_and_has_its_size() {
    let mut sizes = BTreeMap::new();
    for name in presets::names() {
        let v = presets::config_json(name).expect("preset JSON");
        let hf: HfLlamaConfig = presets::hf_config(&v).expect("the decoder's config parses");
        let d = hf.decoder();
        assert_eq!(d.vocab_size, 100352, "{name}: cl100k vocabulary");
        assert_eq!(d.num_heads % d.num_kv_heads, 0, "{name}: grouped-query heads");
        assert!((d.rms_norm_eps - 1e-5).abs() < 1e-12, "{name}: rms_norm_eps");
        assert!(!hf.tie_word_embeddings, "{name}: untied head");
        // Reka Edge is in its Hugging Face (Yasa2) form, the others are Llama.
        let (arch, kind, text) = if presets::is_edge(&v) {
            ("Yasa2ForConditionalGeneration", "yasa2", &v["text_config"])
        } else {
            ("LlamaForCausalLM", "llama", &v)
        };
        assert_eq!(v["architectures"][0], arch, "{name}");
        assert_eq!(v["model_type"], kind, "{name}");
        assert_eq!(v["torch_dtype"], "bfloat16", "{name}");
        assert_eq!(text["eos_token_id"], 100257, "{name}: <|endoftext|>");
        let params = presets::parameter_count(&hf).expect("count");
        let bytes = presets::weight_bytes(&hf, WeightDtype::Bf16).expect("bytes");
        let per_token = presets::decode_bytes_per_token(&hf, WeightDtype::Bf16).expect("per token");
        assert_eq!(bytes, 2 * params);
        assert!(per_token < bytes);
        println!(
            "{name:>10}: {params:>14} parameters, {:>7.2} GB bf16, {:>7.2} GB read per decoded token",
            bytes as f64 / 1e9,
            per_token as f64 / 1e9
        );
        sizes.insert(name, params as f64);
    }
    let flash = sizes["reka-flash"];
    assert!((flash / 20.9e9 - 1.0).abs() < 0.02, "reka-flash has {flash:e} parameters");
    assert!((6e9..=8e9).contains(&sizes["reka-edge"]), "reka-edge has {:e}", sizes["reka-edge"]);
    assert!(sizes["reka-core"] > sizes["reka-flash"]);
    assert!(presets::config_json("reka-nope").is_err());
}

#[test]
fn shards_and_index_cover_every_tensor_once() {
    let dir = write_tiny("layout", 1, WeightDtype::Bf16);
    let hf = presets::hf_config(&presets::config_json("reka-tiny").expect("preset")).expect("config");
    let expected = presets::llama_tensors(&hf).expect("tensors");
    let index = read_json(&dir.0.join("model.safetensors.index.json"));
    let map = index["weight_map"].as_object().expect("weight_map");
    assert_eq!(map.len(), expected.len());

    let mut files: Vec<&str> = map.values().map(|f| f.as_str().expect("file name")).collect();
    files.sort_unstable();
    files.dedup();
    assert!(files.len() >= 4, "only {} shards", files.len());
    let mut seen = BTreeMap::new();
    let mut total = 0;
    for (i, file) in files.iter().enumerate() {
        assert_eq!(*file, format!("model-{:05}-of-{:05}.safetensors", i + 1, files.len()));
        let (header, data_len) = header(&dir.0.join(file));
        assert_eq!(header["__metadata__"]["format"], "pt");
        // The tensors' byte ranges tile the data section exactly.
        let mut ranges: Vec<(u64, u64, &str)> = Vec::new();
        for (name, t) in header.iter().filter(|(k, _)| *k != "__metadata__") {
            let off = t["data_offsets"].as_array().expect("offsets");
            let (a, b) = (off[0].as_u64().expect("start"), off[1].as_u64().expect("end"));
            ranges.push((a, b, name));
            assert_eq!(map[name], *file, "{name}: index names its shard");
            assert_eq!(t["dtype"], "BF16");
            let spec = expected.iter().find(|s| &s.name == name).expect("expected tensor");
            let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).expect("shape");
            assert_eq!(shape, spec.shape, "{name}: shape");
            assert_eq!(b - a, spec.numel() * 2, "{name}: byte length");
            assert!(seen.insert(name.clone(), *file).is_none(), "{name} appears twice");
        }
        ranges.sort_unstable();
        let mut at = 0;
        for (a, b, name) in ranges {
            assert_eq!(a, at, "{file}: {name} starts at {a}, not {at}");
            at = b;
        }
        assert_eq!(at, data_len, "{file}: data length");
        total += data_len;
    }
    assert_eq!(seen.len(), expected.len(), "every tensor in some shard");
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total));
    assert_eq!(total, presets::weight_bytes(&hf, WeightDtype::Bf16).expect("bytes"));

    let cfg = read_json(&dir.0.join("config.json"));
    assert_eq!(cfg["torch_dtype"], "bfloat16");
    let tok = read_json(&dir.0.join("tokenizer_config.json"));
    assert_eq!(tok["added_tokens_decoder"]["100276"]["content"], "<|endofprompt|>");
    assert_eq!(tok["added_tokens_decoder"]["100257"]["special"], true);
    assert_eq!(tok["eos_token"], "<|endoftext|>");
    assert!(tok["bos_token"].is_null());
    assert_eq!(tok["add_bos_token"], false);
    assert!(tok["chat_template"].as_str().is_some_and(|t| t.contains("assistant:")));
}

fn shard_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_seed_decides_the_bytes() {
    let a = write_tiny("seed-a", 42, WeightDtype::Bf16);
    let b = write_tiny("seed-b", 42, WeightDtype::Bf16);
    let c = write_tiny("seed-c", 43, WeightDtype::Bf16);
    let (a, b, c) = (shard_bytes(&a.0), shard_bytes(&b.0), shard_bytes(&c.0));
    assert!(a.len() > 1);
    assert!(a == b, "same seed, same files");
    let differing = a.iter().zip(&c).filter(|(x, y)| x.1 != y.1).count();
    // Shards of only norm weights (all 1.0) do not depend on the seed.
    assert!(differing * 2 > a.len(), "{differing} of {} shards differ", a.len());
}

#[test]
fn the_host_loads_and_runs_the_written_checkpoint() {
    for (tag, dtype) in [("bf16", WeightDtype::Bf16), ("f16", WeightDtype::F16), ("f32", WeightDtype::F32)] {
        let dir = write_tiny(&format!("load-{tag}"), 7, dtype);
        let m = reka_host::model::load("t", &dir.0).expect("checkpoint loads");
        let c = m.decoder.config();
        assert_eq!((c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads), (64, 2, 4, 1));
        let mut cache = m.decoder.new_cache();
        let ids = m.tokenizer.encode("human: hello <sep> assistant:", false);
        let logits = m.decoder.forward(&ids, &mut cache).expect("forward");
        let logits = logits.to_vec1::<f32>().expect("f32 logits");
        assert_eq!(logits.len(), 100352, "{tag}: vocab-length logits");
        assert!(logits.iter().all(|x| x.is_finite()), "{tag}: finite logits");
        assert!(logits.iter().any(|&x| x != logits[0]), "{tag}: logits vary");
        assert_eq!(m.info.eos_token_id, Some(100257));
        assert!(m.info.stop_token_ids.contains(&100257));
        assert!(!m.info.add_bos);
        assert!(m.info.chat_template.as_deref().is_some_and(|t| t.contains("<sep>")));
    }
}

/// A Reka Edge (Yasa2) config writes its ConvNeXt V2 tower and projector too,
/// under the real checkpoint's names, and the directory serves images: the
/// fixture's config (tiny tower, 512-pixel tiles) written with random weights
/// loads as Reka Edge and turns a tile into 64 embeddings of the decoder's width.
#[test]
fn reka_edge_configs_write_their_vision_tower() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reka_edge/config.json");
    let config = read_json(&fixture);
    let dir = TempDir::new("edge");
    let opts = Options { seed: 3, dtype: WeightDtype::Bf16, shard_bytes: 1 << 30, progress: false };
    write_checkpoint(&config, &dir.0, &opts).expect("checkpoint written");
    let index = read_json(&dir.0.join("model.safetensors.index.json"));
    let names: Vec<&str> = index["weight_map"].as_object().expect("map").keys().map(String::as_str).collect();
    for n in [
        "model.language_model.embed_tokens.weight",
        "model.vision_model.backbone.embeddings.patch_embeddings.weight",
        "model.vision_model.backbone.encoder.stages.3.downsampling_layer.1.weight",
        "model.vision_model.backbone.encoder.stages.2.layers.1.grn.weight",
        "model.language_projection.2.bias",
        "lm_head.weight",
    ] {
        assert!(names.contains(&n), "{n} missing");
    }
    // The preset's full-size tower: ConvNeXt V2-Huge, ~657.5M parameters.
    let edge = presets::config_json("reka-edge").expect("preset");
    let vision: u64 = presets::tensors(&edge).expect("tensors").iter().filter(|t| t.name.starts_with("model.vision_model")).map(|t| t.numel()).sum();
    assert!((vision as f64 / 657.5e6 - 1.0).abs() < 0.01, "ConvNeXt V2-Huge has {vision} parameters");
    let m = reka_host::model::load("edge-random", &dir.0).expect("loads as Reka Edge");
    let media = m.info.media.as_ref().expect("reads images");
    assert_eq!(media.image.as_ref().map(|i| i.tokens_per_tile), Some(64));
    let px = vec![0.25f32; 3 * 512 * 512];
    let span = [reka_protocol::MediaSpan { kind: reka_protocol::MediaKind::Image, position: 0, tokens: 64, items: 1 }];
    let rows = m.media.as_ref().expect("tower").embed(&span, &px, &[], 64).expect("embeds");
    assert_eq!(rows.len(), 64);
    assert!(rows.iter().all(|(_, r)| r.len() == 32 && r.iter().all(|v| v.is_finite())));
}
