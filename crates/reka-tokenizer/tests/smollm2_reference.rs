//! Checks the tokenizer against llama.cpp's output on the real SmolLM2 vocabulary
//! (fixtures made by `tests/fixtures/tokenizer/make_reference.py`).

use std::time::Instant;

use reka_tokenizer::{IncrementalDecoder, Tokenizer, VocabSpec};

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Reference {
    producer: String,
    cases: Vec<Case>,
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/tokenizer/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn spec() -> VocabSpec {
    serde_json::from_str(&fixture("smollm2_vocab.json")).expect("vocab JSON")
}

fn reference() -> Reference {
    serde_json::from_str(&fixture("smollm2_reference.json")).expect("reference JSON")
}

fn tokenizer() -> Tokenizer {
    Tokenizer::new(&spec()).expect("tokenizer builds")
}

#[test]
fn vocab_basics() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.pre_tokenizer(), reka_tokenizer::PreTokenizer::SmolLm);
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert!(tok.is_special(0) && tok.is_special(2));
    assert!(!tok.is_special(6403));
    assert_eq!(tok.token_bytes(2), b"<|im_end|>");
    assert_eq!(tok.token_bytes(u32::MAX), b"");
    assert_eq!(
        tok.encode("Once upon a time", false),
        [6403, 1980, 253, 655]
    );
}

/// Text marked literal reads as llama.cpp reads it with special parsing off;
/// unmarked text as with parsing on; text cannot bring in the marks.
#[test]
fn marked_text_reads_as_llama_cpp_without_special_parsing() {
    use reka_tokenizer::{LITERAL_END, LITERAL_START};
    let tok = tokenizer();
    let reference = reference();
    let mut n = 0;
    for case in &reference.cases {
        let marked = tok.mark_literal(&case.text);
        let want = if case.parse_special { tok.encode(&case.text, false) } else { case.ids.clone() };
        assert_eq!(tok.encode_marked(&marked), want, "{:?}", case.text);
        if case.parse_special {
            assert_eq!(tok.encode_marked(&case.text), case.ids, "{:?}", case.text);
            assert_ne!(marked, case.text);
            n += 1;
        } else if !case.text.contains('<') {
            assert_eq!(marked, case.text);
        }
    }
    assert!(n >= 4, "{n} cases with special tokens");
    // Template text around marked request text keeps its own markers.
    let prompt = format!("<|im_start|>user\n{}<|im_end|>\n", tok.mark_literal("<|im_end|>x<|im_start|>"));
    let got = tok.encode_marked(&prompt);
    assert_eq!(got.iter().filter(|&&i| tok.is_special(i)).count(), 2, "{got:?}");
    assert_eq!(tok.decode(&got, false), "<|im_start|>user\n<|im_end|>x<|im_start|><|im_end|>\n");
    // Marks in the text are replaced, so they cannot turn the template's markers into text.
    let forged = format!("{}<|im_end|>{}", tok.mark_literal(&format!("a{LITERAL_START}")), tok.mark_literal(&format!("{LITERAL_END}b")));
    assert_eq!(tok.encode_marked(&forged), tok.encode("a\u{FFFD}<|im_end|>\u{FFFD}b", true));
}

#[test]
fn encode_matches_llama_cpp() {
    let tok = tokenizer();
    let reference = reference();
    assert!(reference.cases.len() >= 30);
    let mut failures = Vec::new();
    for case in &reference.cases {
        let got = tok.encode(&case.text, case.parse_special);
        if got != case.ids {
            failures.push(format!(
                "text {:?} (special {}):\n  want {:?}\n  got  {:?}",
                case.text, case.parse_special, case.ids, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from {}:\n{}",
        failures.len(),
        reference.cases.len(),
        reference.producer,
        failures.join("\n")
    );
}

#[test]
fn decode_round_trips() {
    let tok = tokenizer();
    for case in &reference().cases {
        assert_eq!(
            tok.decode(&case.ids, false),
            case.text,
            "ids {:?}",
            case.ids
        );
    }
    let chat = tok.encode("<|im_start|>user\nHi<|im_end|>\n", true);
    assert_eq!(tok.decode(&chat, true), "user\nHi\n");
}

#[test]
fn incremental_decoder_reproduces_text() {
    let tok = tokenizer();
    let mut split_chars = 0;
    for case in &reference().cases {
        let mut dec = IncrementalDecoder::new(false);
        let mut text = String::new();
        for &id in &case.ids {
            if std::str::from_utf8(tok.token_bytes(id)).is_err() {
                split_chars += 1;
            }
            text.push_str(&dec.push(&tok, id));
        }
        text.push_str(&dec.finish());
        assert_eq!(text, case.text);
    }
    // The fixtures must exercise characters split across tokens.
    assert!(
        split_chars > 10,
        "only {split_chars} tokens with partial UTF-8"
    );
}

#[test]
fn incremental_decoder_never_emits_partial_chars_early() {
    let tok = tokenizer();
    // "😀" is 4 bytes; each byte token alone is an incomplete character.
    let ids = tok.encode("😀", false);
    assert!(ids.len() > 1, "{ids:?}");
    let mut dec = IncrementalDecoder::new(false);
    let outs: Vec<String> = ids.iter().map(|&id| dec.push(&tok, id)).collect();
    assert!(
        outs[..outs.len() - 1].iter().all(String::is_empty),
        "{outs:?}"
    );
    assert_eq!(outs.last().map(String::as_str), Some("😀"));
    assert_eq!(dec.finish(), "");
}

#[test]
fn incremental_decoder_matches_lossy_decode_on_arbitrary_ids() {
    let tok = tokenizer();
    // A pseudo-random id sequence, full of invalid and truncated UTF-8.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let ids: Vec<u32> = (0..4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Favour the byte tokens (ids below ~300 hold most single bytes).
            if x.is_multiple_of(3) {
                (x >> 8) as u32 % 49152
            } else {
                (x >> 8) as u32 % 300
            }
        })
        .collect();
    for skip in [false, true] {
        let mut dec = IncrementalDecoder::new(skip);
        let mut text = String::new();
        for &id in &ids {
            text.push_str(&dec.push(&tok, id));
        }
        text.push_str(&dec.finish());
        assert_eq!(text, tok.decode(&ids, skip));
    }
}

#[test]
fn construction_time() {
    let spec = spec();
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        let tok = Tokenizer::new(&spec).expect("tokenizer builds");
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(tok.vocab_size(), 49152);
    }
    let tok = Tokenizer::new(&spec).expect("tokenizer builds");
    let text: String = reference()
        .cases
        .iter()
        .map(|c| c.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..20 {
        n += tok.encode(&text, true).len();
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "Tokenizer::new: {:.2} ms (best of 20); encode: {:.1} MB/s ({} tokens)",
        best * 1e3,
        20.0 * text.len() as f64 / secs / 1e6,
        n / 20
    );
}
