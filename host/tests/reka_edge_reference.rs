//! Reka Edge (Yasa2) end to end against Reka's own code and transformers: a
//! tiny random checkpoint in the Hugging Face layout (ConvNeXt V2 tower with
//! hidden sizes 16-24-32-40, 512-pixel tiles, 64 tokens per tile; a 2-layer
//! decoder with `rotary_pct` 0.5 and `rotary_emb_base` 500000; bf16 weights)
//! whose vision embeddings come from the plugin's `_process_image_input`
//! (over transformers' `ConvNextV2Model`) and whose logits come from
//! transformers' `Phi3ForCausalLM` with the same weights, in float32.
//! Fixtures and the script that made them: tests/fixtures/reka_edge/ (its
//! README says which versions).
//!
//! The pixels fed here are the fixture's own (the plugin's processor output,
//! stored as the 8-bit tiles it normalises), so these tests check the model;
//! `crates/reka-media/tests/edge_tiles.rs` checks our preprocessing against
//! the same tiles.

use std::path::{Path, PathBuf};

use reka_host::model::{self, LoadedModel, Step, WeightDtype};
use reka_protocol::{MediaKind, MediaSpan};
use serde_json::Value;

/// Largest |Δ| accepted against float32 references (embeddings and logits).
const TOLERANCE: f32 = 1e-4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reka_edge")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).expect("reference.json")).expect("json")
}

fn f32_file(rel: &str) -> Vec<f32> {
    let b = std::fs::read(dir().join(rel)).expect(rel);
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A stored 8-bit tile normalised as the plugin's processor does.
fn tile_pixels(rel: &str) -> Vec<f32> {
    let img = image::open(dir().join(rel)).expect(rel).to_rgb8();
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let mut out = Vec::with_capacity(3 * 512 * 512);
    for c in 0..3 {
        out.extend(img.as_raw().iter().skip(c).step_by(3).map(|&v| ((f64::from(v) * (1.0 / 255.0)) as f32 - mean[c]) / std[c]));
    }
    out
}

/// The tile files of an image of the fixture, in the plugin's order.
fn image_tiles(r: &Value, file: &str) -> Vec<String> {
    let im = r["images"].as_array().expect("images").iter().find(|i| i["file"] == file).expect("image listed");
    im["tile_files"].as_array().expect("tile_files").iter().map(|t| t["file"].as_str().expect("file").to_string()).collect()
}

fn load() -> LoadedModel {
    model::load_as("reka-edge-tiny", &dir(), WeightDtype::F32).expect("the Reka Edge checkpoint loads")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b }) as u32
}

/// Embeddings of the media spans of `ids` (runs of `<REKA_IMG_TOKEN>`), the
/// `k`-th run taking `media[k]` = (kind, tile files).
fn embeds(m: &LoadedModel, ids: &[u32], media: &[(MediaKind, Vec<String>)]) -> Vec<(usize, Vec<f32>)> {
    let mut spans = Vec::new();
    let mut pixels = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < ids.len() {
        if ids[i] != 100278 {
            i += 1;
            continue;
        }
        let start = i;
        while i < ids.len() && ids[i] == 100278 {
            i += 1;
        }
        let (kind, files) = &media[k];
        k += 1;
        for f in files {
            pixels.extend(tile_pixels(f));
        }
        spans.push(MediaSpan { kind: *kind, position: start as u32, tokens: (i - start) as u32, items: files.len() as u32 });
    }
    assert_eq!(k, media.len(), "one placeholder run per media item");
    m.media.as_ref().expect("Reka Edge has a vision tower").embed(&spans, &pixels, &[], ids.len()).expect("embeds")
}

fn last_logits(m: &LoadedModel, cache: &mut model::KvCache, ids: &[u32], emb: &[(usize, Vec<f32>)]) -> Vec<f32> {
    let refs: Vec<(usize, &[f32])> = emb.iter().map(|(r, v)| (*r, v.as_slice())).collect();
    let mut steps = [Step { ids, cache, embeds: refs, all_rows: false }];
    m.decoder.forward_batch(&mut steps).expect("forward").pop().expect("one step")
}

#[test]
fn config_reads_the_plugins_keys() {
    let m = load();
    let c = m.decoder.config();
    assert_eq!((c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim), (32, 2, 4, 2, 8));
    assert_eq!((c.rotary_dim, c.rope_theta, c.context_length), (4, 500000.0, 2048));
    let info = &m.info;
    assert_eq!(info.chat_format.as_deref(), Some("reka-edge"));
    assert!(info.stop_token_ids.contains(&100290) && info.stop_token_ids.contains(&100257), "{:?}", info.stop_token_ids);
    let media = info.media.as_ref().expect("media info");
    assert_eq!(media.placeholder_id, 100278);
    let img = media.image.as_ref().expect("images");
    assert_eq!((img.size, img.tokens_per_tile, img.max_tiles, img.wrap), (512, 64, 4, Some([100279, 100280])));
    assert_eq!(img.tiling, reka_protocol::Tiling::Uhd { patch: 4 });
    let vid = media.video.as_ref().expect("video");
    assert_eq!((vid.tokens_per_frame, vid.wrap), (64, Some([100284, 100285])));
    assert!(media.audio.is_none());
    // The tokenizer: cl100k plus Reka's specials at the plugin's ids.
    for (t, id) in [("<sep>", 100290), ("<REKA_IMG_TOKEN>", 100278), ("<video>", 100284), ("<|special_token_100300|>", 100300)] {
        assert_eq!(m.tokenizer.token_to_id(t), Some(id), "{t}");
    }
}

#[test]
fn vision_embeddings_match_the_plugin() {
    let r = reference();
    let m = load();
    let towers = m.media.as_ref().expect("tower");
    for (name, kind) in [("one_tile_300x200", MediaKind::Image), ("grid2x2_1000x700", MediaKind::Image), ("wide_2000x150", MediaKind::Image)] {
        let e = &r["vision_embeddings"][name];
        let files = image_tiles(&r, &format!("images/{name}.png"));
        let px: Vec<f32> = files.iter().flat_map(|f| tile_pixels(f)).collect();
        let n = files.len() as u32;
        let spans = [MediaSpan { kind, position: 0, tokens: 64 * n, items: n }];
        let got: Vec<f32> = towers.embed(&spans, &px, &[], 64 * n as usize).expect("embed").into_iter().flat_map(|(_, v)| v).collect();
        let want = f32_file(e["file"].as_str().expect("file"));
        let d = max_diff(&got, &want);
        println!("{name}: {n} tiles, max |Δ| {d:.2e}");
        assert!(d <= TOLERANCE, "{name}: max |Δ| {d}");
    }
    let frames: Vec<String> = r["video"]["frame_pixels_equal_tiles"].as_array().expect("frames").iter().map(|f| f.as_str().expect("f").to_string()).collect();
    let px: Vec<f32> = frames.iter().flat_map(|f| tile_pixels(f)).collect();
    let spans = [MediaSpan { kind: MediaKind::Video, position: 0, tokens: 192, items: 3 }];
    let got: Vec<f32> = towers.embed(&spans, &px, &[], 192).expect("embed").into_iter().flat_map(|(_, v)| v).collect();
    let d = max_diff(&got, &f32_file("vision/video_3_frames.embeds.f32"));
    assert!(d <= TOLERANCE, "video: max |Δ| {d}");
}

#[test]
fn logits_and_greedy_ids_match_transformers() {
    let r = reference();
    let m = load();
    let frames: Vec<String> = r["video"]["frame_pixels_equal_tiles"].as_array().expect("frames").iter().map(|f| f.as_str().expect("f").to_string()).collect();
    for case in r["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
        let mut media: Vec<(MediaKind, Vec<String>)> =
            case["images"].as_array().expect("images").iter().map(|f| (MediaKind::Image, image_tiles(&r, f.as_str().expect("file")))).collect();
        if !case["video_frames"].as_array().expect("video_frames").is_empty() {
            media.push((MediaKind::Video, frames.clone()));
        }
        let emb = embeds(&m, &ids, &media);
        let mut cache = m.decoder.new_cache();
        let logits = last_logits(&m, &mut cache, &ids, &emb);
        let want = f32_file(case["logits_file"].as_str().expect("logits_file"));
        let d = max_diff(&logits, &want);
        println!("{name}: {} ids, max |Δlogit| {d:.2e}", ids.len());
        assert!(d <= TOLERANCE, "{name}: max |Δlogit| {d}");
        let want_greedy: Vec<u32> = serde_json::from_value(case["greedy"].clone()).expect("greedy");
        let mut got = vec![argmax(&logits)];
        while got.len() < want_greedy.len() {
            let last = [got[got.len() - 1]];
            let l = last_logits(&m, &mut cache, &last, &[]);
            got.push(argmax(&l));
        }
        assert_eq!(got, want_greedy, "{name}: greedy ids");
    }
}
