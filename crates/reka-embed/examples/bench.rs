//! Fetches all-MiniLM-L6-v2 (if needed), then times embedding the reference
//! sentences (tests/fixtures/embeddings) batched, in one padded forward pass, and
//! one at a time, and prints a table.
//!
//! `cargo run -p reka-embed --release --example bench [-- ROUNDS]`

use anyhow::{Context, Result};
use reka_embed::{fetch, Embedder};
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let dir = fetch::ensure(&fetch::default_cache_dir())?;
    let t0 = Instant::now();
    let embedder = Embedder::load(&dir)?;
    let load = t0.elapsed();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/embeddings/minilm_reference.json"
    );
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let texts: Vec<&str> = reference["sentences"]
        .as_array()
        .context("no sentences")?
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let tokens = embedder.embed(&texts)?.prompt_tokens;
    println!(
        "model loaded in {:.0} ms; {} texts, {tokens} tokens, best of {rounds} rounds",
        ms(load),
        texts.len()
    );
    println!("{:<28} {:>10} {:>14}", "mode", "ms", "tokens/s");
    let row = |name: &str, f: &dyn Fn() -> Result<()>| -> Result<()> {
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed());
        }
        println!(
            "{name:<28} {:>10.1} {:>14.0}",
            ms(best),
            tokens as f64 / best.as_secs_f64()
        );
        Ok(())
    };
    row("embed (length-sorted batches)", &|| {
        embedder.embed(&texts).map(drop)
    })?;
    row("embed_padded (one forward)", &|| {
        embedder.embed_padded(&texts).map(drop)
    })?;
    row("one at a time", &|| {
        texts
            .iter()
            .try_for_each(|t| embedder.embed(&[t]).map(drop))
    })?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
