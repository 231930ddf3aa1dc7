//! Reka Edge's GGUF pair against llama.cpp: the tiny Reka Edge checkpoint
//! (tests/fixtures/reka_edge) converted with llama.cpp's own converter classes
//! (text: its `LlamaModel`, bf16; vision: its `MmprojModel` as projector type
//! `yasa2`, f16 matrices), and llama.cpp's answers through llama-cpp-python
//! 0.3.36's mtmd library. tests/fixtures/reka_edge/gguf/ holds the files, the
//! script and its README.
//!
//! llama.cpp's converter ignores `rotary_pct` (it writes `rope.dimension_count`
//! = the head size), so this GGUF rotates whole heads: a different model from
//! the checkpoint, and the one llama.cpp runs. We read the GGUF as it is.
//!
//! Tolerances. llama.cpp rounds activations to bf16 in every bf16 matmul and
//! to f16 in the f16 convolutions and projector; we compute in f32 from the
//! same weights. Image embeddings: |Δ| ≤ 0.005 (values up to ≈3.4; measured
//! 0.0015); first-step logits: |Δ| ≤ 0.03 on llama.cpp's top 10 (measured 0.010); greedy ids equal up to the first
//! step where llama.cpp's top-2 margin is under 0.03 (its image prompt has
//! margins of 0.006 and 0.011 at steps 3 and 4, inside the rounding noise).

use std::path::{Path, PathBuf};

use reka_host::model::{self, LoadedModel, Step};
use reka_protocol::{MediaKind, MediaSpan};
use serde_json::Value;

const EMBED_TOLERANCE: f32 = 0.005;
const LOGIT_TOLERANCE: f32 = 0.03;
const MARGIN_FLOOR: f64 = 0.03;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reka_edge")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("gguf/llama_cpp_reference.json")).expect("reference")).expect("json")
}

fn load() -> LoadedModel {
    let g = dir().join("gguf");
    model::yasa2::load_gguf_pair("reka-edge-gguf", &g.join("reka-edge-tiny.bf16.gguf"), &g.join("mmproj-reka-edge-tiny.f16.gguf"))
        .expect("the GGUF pair loads")
}

fn pixels() -> Vec<f32> {
    let img = image::open(dir().join("images/square_512x512.png")).expect("image").to_rgb8();
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    (0..3).flat_map(|c| img.as_raw().iter().skip(c).step_by(3).map(move |&v| (v as f32 / 255.0 - mean[c]) / std[c])).collect()
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b }) as u32
}

/// Greedy ids after `ids` (with `emb` at their rows), and the first step's logits.
fn greedy(m: &LoadedModel, ids: &[u32], emb: &[(usize, Vec<f32>)], n: usize) -> (Vec<u32>, Vec<f32>) {
    let mut cache = m.decoder.new_cache();
    let refs: Vec<(usize, &[f32])> = emb.iter().map(|(r, v)| (*r, v.as_slice())).collect();
    let mut steps = [Step { ids, cache: &mut cache, embeds: refs, all_rows: false }];
    let first = m.decoder.forward_batch(&mut steps).expect("prefill").pop().expect("logits");
    let mut out = vec![argmax(&first)];
    while out.len() < n {
        let last = [out[out.len() - 1]];
        let l = m.decoder.forward_batch(&mut [Step::tokens(&last, &mut cache)]).expect("step").pop().expect("logits");
        out.push(argmax(&l));
    }
    (out, first)
}

/// Checks a prompt's greedy ids and first-step logits against llama.cpp's.
fn check(name: &str, p: &Value, got: &[u32], first: &[f32]) {
    let top = p["steps"][0]["top"].as_array().expect("top");
    let mut worst = 0f32;
    for t in top {
        let (id, l) = (t[0].as_u64().expect("id") as usize, t[1].as_f64().expect("logit") as f32);
        worst = worst.max((first[id] - l).abs());
    }
    println!("{name}: llama.cpp's top-10 logits within {worst:.4}");
    assert!(worst <= LOGIT_TOLERANCE, "{name}: top-10 logits differ by {worst}");
    let want: Vec<u32> = serde_json::from_value(p["greedy"].clone()).expect("greedy");
    let steps = p["steps"].as_array().expect("steps");
    let sure = steps.iter().take_while(|s| s["margin"].as_f64().expect("margin") >= MARGIN_FLOOR).count();
    assert!(sure >= 1, "{name}: llama.cpp's first step is itself a near-tie");
    println!("{name}: greedy {got:?} vs llama.cpp {want:?}; compared over the first {sure} steps");
    assert_eq!(&got[..sure], &want[..sure], "{name}: greedy ids");
}

#[test]
fn text_prompt_matches_llama_cpp() {
    let r = reference();
    let m = load();
    let c = m.decoder.config();
    // The GGUF says full rotary (llama.cpp's converter drops rotary_pct).
    assert_eq!((c.rotary_dim, c.head_dim, c.rope_theta), (8, 8, 500000.0));
    let p = &r["text_prompt"];
    let ids: Vec<u32> = serde_json::from_value(p["layout"][0]["ids"].clone()).expect("ids");
    assert_eq!(m.tokenizer.encode("human: Hello there<sep>assistant:", true), ids, "our tokenizer on the GGUF vocabulary");
    let (got, first) = greedy(&m, &ids, &[], 8);
    check("text", p, &got, &first);
}

#[test]
fn one_tile_image_prompt_matches_llama_cpp() {
    let r = reference();
    let m = load();
    let p = &r["image_prompt"];
    let head: Vec<u32> = serde_json::from_value(p["layout"][0]["ids"].clone()).expect("head");
    let tail: Vec<u32> = serde_json::from_value(p["layout"][2]["ids"].clone()).expect("tail");
    let mut ids = head.clone();
    ids.extend(std::iter::repeat_n(100278u32, 64));
    ids.extend(&tail);
    let span = [MediaSpan { kind: MediaKind::Image, position: head.len() as u32, tokens: 64, items: 1 }];
    let emb = m.media.as_ref().expect("vision").embed(&span, &pixels(), &[], ids.len()).expect("embed");
    let want: Vec<Vec<f32>> = serde_json::from_value(p["image_embeddings"].clone()).expect("embeddings");
    let worst = emb.iter().zip(&want).flat_map(|((_, a), b)| a.iter().zip(b).map(|(x, y)| (x - y).abs())).fold(0f32, f32::max);
    println!("image embeddings within {worst:.4} of llama.cpp's");
    assert!(worst <= EMBED_TOLERANCE, "image embeddings differ by {worst}");
    let (got, first) = greedy(&m, &ids, &emb, 8);
    check("image", p, &got, &first);
}
