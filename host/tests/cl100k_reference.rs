//! cl100k_base built from tiktoken-rs's ranks gives OpenAI tiktoken's ids on text
//! in fifteen scripts and styles, and decodes back to the same text
//! (reference: tests/fixtures/tokenizer/cl100k_reference.json, made by
//! make_cl100k_reference.py beside it with tiktoken 0.14.0).

use reka_host::model::tiktoken::cl100k_vocab;
use reka_tokenizer::Tokenizer;
use serde_json::Value;

#[test]
fn cl100k_matches_tiktoken_in_many_scripts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tokenizer/cl100k_reference.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let vocab = cl100k_vocab(&[], 100_352).expect("vocab");
    assert_eq!(vocab.tokens.len(), 100_352);
    let tok = Tokenizer::new(&vocab).expect("tokenizer");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 15);
    for c in cases {
        let text = c["text"].as_str().expect("text");
        let want: Vec<u32> = c["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect();
        let got = tok.encode(text, true);
        assert_eq!(got, want, "{}: {text:?}", c["name"]);
        assert_eq!(tok.decode(&got, false), text, "{} does not round-trip", c["name"]);
    }
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(100257));
}

#[test]
fn checkpoints_without_tokenizer_json_get_cl100k_with_their_specials() {
    use reka_host::model::config::HfLlamaConfig;
    let dir = std::env::temp_dir().join(format!("reka-cl100k-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let tok_cfg = serde_json::json!({"added_tokens_decoder": {"100351": {"content": "<sep>", "special": true}}});
    std::fs::write(dir.join("tokenizer_config.json"), tok_cfg.to_string()).expect("tokenizer config");
    // A Reka Flash 3 shaped config (only the fields the tokenizer path reads matter).
    let hf: HfLlamaConfig = serde_json::from_value(serde_json::json!({
        "hidden_size": 6144, "intermediate_size": 19648, "num_hidden_layers": 44,
        "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 100352,
        "eos_token_id": 100257, "max_position_embeddings": 32768
    }))
    .expect("config");
    let result = reka_host::model::tokenizer_json::model_info("reka", &dir, &hf, &hf.decoder());
    let _ = std::fs::remove_dir_all(&dir);
    let (info, vocab) = result.expect("model info");
    let tok = Tokenizer::new(&vocab).expect("tokenizer");
    assert_eq!(vocab.tokens.len(), 100_352);
    assert_eq!(tok.token_to_id("<sep>"), Some(100351));
    assert_eq!(tok.encode("human: hi <sep>", true).last(), Some(&100351));
    assert_eq!(info.eos_token_id, Some(100257));
    assert!(info.stop_token_ids.contains(&100257) && info.stop_token_ids.contains(&100351));
}
