//! Mask cost per token, natively, at two vocabulary sizes: SmolLM2's
//! (49,152, the tokenizer fixture) and cl100k_base with Reka Edge's special
//! tokens (100,352). For each: building the vocabulary's token trie and the
//! compiler (once per request in the generate component), compiling each
//! constraint, and the per-step mask (p50 / p99 / max over every step of
//! walking valid documents token by token). Prints a table.
//!
//! `cargo run --release -p reka-constrain --example mask_bench`

use reka_constrain::{Compiler, Spec, ToolSpec, Vocab};
use reka_tokenizer::{Tokenizer, VocabSpec};
use serde_json::json;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The constraints and a valid output of each.
fn cases() -> Vec<(&'static str, Spec, String)> {
    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["city", "zip"]}},
        "required": ["name", "age", "tags", "address"], "additionalProperties": false});
    let doc = r#"{"name": "Ada Lovelace", "age": 36, "tags": ["mathematician", "writer", "analyst"], "address": {"city": "London", "zip": "12345"}}"#;
    let tool = ToolSpec { name: "get_weather".into(), parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}) };
    let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";
    vec![
        ("json_schema (nested, 4 fields)", Spec::JsonSchema(schema), doc.to_string()),
        ("json_object", Spec::JsonObject, r#"{"a": [1, 2, {"b": "some longer text here"}], "c": null, "d": true}"#.to_string()),
        ("tool call (required)", Spec::ToolCalls { tools: vec![tool], parallel: false }, call.to_string()),
    ]
}

fn bench(label: &str, tok: Tokenizer, stops: &[u32]) {
    for slices in [true, false] {
        bench_with(label, tok.clone(), stops, slices);
    }
}

fn bench_with(label: &str, tok: Tokenizer, stops: &[u32], slices: bool) {
    let size = tok.vocab_size();
    let t = Instant::now();
    let vocab = Vocab::new(tok, stops).expect("vocab");
    let trie = t.elapsed();
    let t = Instant::now();
    let compiler = if slices { Compiler::new(vocab) } else { Compiler::without_slices(vocab) }.expect("compiler");
    let factory = t.elapsed();
    let kind = if slices { "with lexer slices" } else { "without slices" };
    println!("\n{label}: {size} tokens, {kind}; vocabulary trie {:.1} ms, compiler {:.1} ms", ms(trie), ms(factory));
    println!("| constraint | compile ms | steps | mask p50 µs | mask p99 µs | mask max µs | accept p50 µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, spec, text) in cases() {
        let (mut masks, mut accepts, mut compile) = (Vec::new(), Vec::new(), Duration::ZERO);
        // Special-token strings (Reka Edge's `<tool_call>`) as their tokens.
        let ids = compiler.vocab().tokenizer().encode(&text, true);
        // Several rounds so the percentiles rest on enough steps.
        for _ in 0..20 {
            let t = Instant::now();
            let mut c = compiler.compile(&spec).expect("compiles");
            compile += t.elapsed();
            for &id in &ids {
                let t = Instant::now();
                let m = c.mask().expect("mask");
                masks.push(t.elapsed());
                assert!(m.allows(id), "{name}: token {id} not allowed");
                let t = Instant::now();
                c.accept(id).expect("accept");
                accepts.push(t.elapsed());
            }
        }
        masks.sort();
        accepts.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {name} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            ms(compile) / 20.0,
            ids.len(),
            us(percentile(&masks, 0.5)),
            us(percentile(&masks, 0.99)),
            us(masks[masks.len() - 1]),
            us(percentile(&accepts, 0.5))
        );
    }
}

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let spec: VocabSpec = serde_json::from_str(&std::fs::read_to_string(format!("{root}/tests/fixtures/tokenizer/smollm2_vocab.json")).expect("SmolLM2 vocabulary fixture")).expect("vocab json");
    bench("SmolLM2-135M", Tokenizer::new(&spec).expect("tokenizer"), &[0, 2]);
    let specials: Vec<(String, u32)> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
        &std::fs::read_to_string(format!("{root}/tests/fixtures/reka_edge/tiktoken_special_tokens.json")).expect("Reka Edge special tokens"),
    )
    .expect("specials json")
    .into_iter()
    .filter_map(|(k, v)| Some((k, v.as_u64()? as u32)))
    .collect();
    let spec = reka_engine::model::tiktoken::cl100k_vocab(&specials, 100_352).expect("cl100k");
    bench("cl100k_base + Reka Edge specials", Tokenizer::new(&spec).expect("tokenizer"), &[100_257]);
}
