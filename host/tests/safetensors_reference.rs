//! Checks the Hugging Face checkpoint loader (`reka_host::model::load` on a
//! directory) against transformers itself: a tiny random `LlamaForCausalLM`
//! (3 layers, grouped-query attention 4:1, SmolLM2's 49152-token vocabulary)
//! saved with `save_pretrained` in float32, and the logits and greedy ids that
//! transformers computed from it. Fixtures and the script that made them:
//! tests/fixtures/tiny_llama/ (its README says which versions).

use std::path::{Path, PathBuf};

use reka_host::model::{self, LoadedModel};
use serde::Deserialize;

/// Largest |Δlogit| accepted against transformers' float32 logits.
const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Prompt {
    name: String,
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
    argmax: u32,
    logits: Vec<f32>,
    #[serde(default)]
    greedy: Option<Vec<u32>>,
}

#[derive(Deserialize)]
struct Reference {
    origin: serde_json::Value,
    prompts: Vec<Prompt>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_llama")
}

fn reference() -> Reference {
    let path = fixture_dir().join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

fn load() -> LoadedModel {
    model::load("tiny", &fixture_dir()).expect("tiny checkpoint loads")
}

fn to_vec(t: &candle_core::Tensor) -> Vec<f32> {
    t.to_vec1::<f32>().expect("logits are a f32 vector")
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "logit vectors differ in length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn last_position_logits_match_transformers() {
    let m = load();
    let r = reference();
    println!("reference: {}", r.origin);
    let mut worst = Vec::new();
    for p in &r.prompts {
        let mut cache = m.decoder.new_cache();
        let got = to_vec(&m.decoder.forward(&p.ids, &mut cache).expect("forward"));
        assert_eq!(got.len(), p.logits.len(), "{}: vocab size", p.name);
        let d = max_abs_diff(&got, &p.logits);
        println!("{:>20} ({:>2} ids): max |Δlogit| = {d:.3e}", p.name, p.ids.len());
        assert_eq!(argmax(&got), p.argmax, "{}: argmax", p.name);
        worst.push((p.name.clone(), d));
    }
    for (name, d) in worst {
        assert!(d <= TOLERANCE, "{name}: max |Δlogit| {d:e} > {TOLERANCE:e}");
    }
}

#[test]
fn chunked_prompt_through_the_cache_matches_transformers() {
    // The longest prompt fed in pieces (several positions, one, the rest) must
    // give the same last logits as transformers' single pass.
    let m = load();
    let r = reference();
    let p = r.prompts.iter().max_by_key(|p| p.ids.len()).expect("prompts");
    let n = p.ids.len();
    assert!(n >= 3);
    let (a, rest) = p.ids.split_at(n / 2);
    let (b, c) = rest.split_at(1);
    let mut cache = m.decoder.new_cache();
    m.decoder.forward(a, &mut cache).expect("first chunk");
    m.decoder.forward(b, &mut cache).expect("one token");
    let got = to_vec(&m.decoder.forward(c, &mut cache).expect("last chunk"));
    assert_eq!(cache.len(), n);
    let d = max_abs_diff(&got, &p.logits);
    println!("{} in chunks {}+{}+{}: max |Δlogit| = {d:.3e}", p.name, a.len(), b.len(), c.len());
    assert!(d <= TOLERANCE, "max |Δlogit| {d:e} > {TOLERANCE:e}");
}

#[test]
fn greedy_continuations_match_transformers_generate() {
    let m = load();
    let r = reference();
    let mut checked = 0;
    for p in &r.prompts {
        let Some(want) = &p.greedy else { continue };
        let mut cache = m.decoder.new_cache();
        let mut logits = to_vec(&m.decoder.forward(&p.ids, &mut cache).expect("prompt"));
        let mut got = Vec::with_capacity(want.len());
        for _ in 0..want.len() {
            let next = argmax(&logits);
            got.push(next);
            logits = to_vec(&m.decoder.forward(&[next], &mut cache).expect("step"));
        }
        println!("{:>20}: greedy {got:?} (transformers {want:?})", p.name);
        assert_eq!(&got, want, "{}: greedy ids", p.name);
        checked += 1;
    }
    assert!(checked >= 2, "reference has {checked} greedy prompts");
}

#[test]
fn model_info_describes_the_checkpoint() {
    let m = load();
    let i = &m.info;
    assert_eq!(i.name, "tiny");
    assert_eq!(i.architecture, "llama");
    assert_eq!(i.vocab_size, 49152);
    assert_eq!(i.context_length, 256);
    assert_eq!(i.bos_token_id, Some(1), "<|im_start|>");
    assert_eq!(i.eos_token_id, Some(2), "<|im_end|>");
    assert!(!i.add_bos);
    assert!(i.stop_token_ids.contains(&2), "stops {:?}", i.stop_token_ids);
    assert!(i.stop_token_ids.contains(&0), "<|endoftext|> stops too: {:?}", i.stop_token_ids);
    assert!(i
        .chat_template
        .as_deref()
        .is_some_and(|t| t.contains("<|im_start|>")));

    let t = &m.tokenizer;
    assert_eq!(t.vocab_size(), 49152);
    assert_eq!(t.pre_tokenizer(), reka_tokenizer::PreTokenizer::SmolLm);
    assert_eq!(t.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(t.token_to_id("<|im_end|>"), Some(2));
    assert!((0..17).all(|id| t.token_type(id) == Some(3)), "control tokens 0-16");
    assert!((17..49152).all(|id| t.token_type(id) == Some(1)), "normal tokens");

    let c = m.decoder.config();
    assert_eq!(
        (c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim),
        (32, 96, 3, 4, 1, 8)
    );
    assert_eq!(c.rope_theta, 10_000.0);
    assert!((c.rms_norm_eps - 1e-5).abs() < 1e-12);
    assert!(!c.attn_f16, "checkpoints compute attention in f32");
}

#[test]
fn tokenizer_from_tokenizer_json_matches_hf_tokenizers() {
    let m = load();
    // The tokenizer the host uses natively, and the compact form guests receive.
    let guest = reka_tokenizer::Tokenizer::from_compact(&m.tokenizer_blob).expect("compact tokenizer");
    for p in &reference().prompts {
        assert_eq!(m.tokenizer.encode(&p.text, p.parse_special), p.ids, "{}: {:?}", p.name, p.text);
        assert_eq!(guest.encode(&p.text, p.parse_special), p.ids, "{} (compact): {:?}", p.name, p.text);
    }
}

#[test]
fn rope_theta_is_read_from_rope_parameters() {
    // transformers 5 saves `"rope_parameters": {"rope_theta": ..., "rope_type": ...}`
    // and no top-level `rope_theta` (see the fixture's config.json). The fixture
    // uses 10000, the loader's default, so this copy changes it.
    let dir = std::env::temp_dir().join(format!("reka-tiny-llama-rope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for name in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture_dir().join(name), dir.join(name)).expect("copy fixture");
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("config.json")).expect("config"))
            .expect("config JSON");
    cfg["rope_parameters"]["rope_theta"] = serde_json::json!(500_000.0);
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write config");
    let loaded = model::load("tiny", &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let m = loaded.expect("loads");
    assert_eq!(m.decoder.config().rope_theta, 500_000.0);
}
