//! The compact form round-trips: a tokenizer rebuilt from it encodes the llama.cpp
//! reference cases exactly as the original does, and corrupt blobs are refused.

use reka_tokenizer::{Tokenizer, VocabSpec};
use serde_json::Value;
use std::time::Instant;

fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/fixtures/tokenizer/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("fixture")
}

#[test]
fn compact_round_trip_keeps_llama_cpp_ids() {
    let spec: VocabSpec = serde_json::from_str(&fixture("smollm2_vocab.json")).expect("vocab");
    let tok = Tokenizer::new(&spec).expect("tokenizer");
    let blob = tok.to_compact();
    let t0 = Instant::now();
    let back = Tokenizer::from_compact(&blob).expect("from_compact");
    eprintln!("from_compact: {:?} for {} bytes", t0.elapsed(), blob.len());
    let cases: Value = serde_json::from_str(&fixture("smollm2_reference.json")).expect("reference");
    let cases = cases.get("cases").unwrap_or(&cases).as_array().expect("cases").clone();
    assert!(cases.len() > 10);
    for c in &cases {
        let text = c["text"].as_str().expect("text");
        let special = c.get("parse_special").and_then(Value::as_bool).unwrap_or(false);
        let want: Vec<u32> = c["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect();
        assert_eq!(back.encode(text, special), want, "{text:?}");
    }
    assert_eq!(back.vocab_size(), tok.vocab_size());
    assert_eq!(back.token_to_id("<|im_end|>"), tok.token_to_id("<|im_end|>"));
}

#[test]
fn corrupt_blobs_are_errors() {
    let spec: VocabSpec = serde_json::from_str(&fixture("smollm2_vocab.json")).expect("vocab");
    let blob = Tokenizer::new(&spec).expect("tokenizer").to_compact();
    assert!(Tokenizer::from_compact(&blob[..blob.len() / 2]).is_err());
    assert!(Tokenizer::from_compact(b"nope").is_err());
    let mut bad = blob.clone();
    bad[4] = 9; // version
    assert!(Tokenizer::from_compact(&bad).is_err());
}
