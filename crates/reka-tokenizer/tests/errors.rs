//! Construction errors and small synthetic vocabularies.

use reka_tokenizer::{Error, Tokenizer, VocabSpec};

/// A tiny GPT-2 style vocabulary: all 256 byte characters plus a few merges.
fn tiny(pre: &str) -> VocabSpec {
    // The byte-level character of every byte, in byte order.
    let mut tokens: Vec<String> = Vec::new();
    let mut next = 256u32;
    for b in 0..=255u32 {
        let direct = matches!(b, 33..=126 | 161..=172 | 174..=255);
        let cp = if direct {
            b
        } else {
            next += 1;
            next - 1
        };
        tokens.push(char::from_u32(cp).map(String::from).unwrap_or_default());
    }
    let merges = ["Ġ t", "h e", "Ġt he", "Ġ Ġ", "1 2", "12 3"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
    }
    tokens.push("<|end|>".into());
    tokens.push("<tool>".into());
    let mut token_types = vec![1; tokens.len()];
    let n = token_types.len();
    token_types[n - 2] = 3;
    token_types[n - 1] = 4;
    VocabSpec {
        model: "gpt2".into(),
        pre: pre.into(),
        tokens,
        merges: merges.iter().map(|s| s.to_string()).collect(),
        token_types,
    }
}

fn id(tok: &Tokenizer, text: &str) -> u32 {
    tok.token_to_id(text)
        .unwrap_or_else(|| panic!("no token {text:?}"))
}

#[test]
fn rejects_bad_specs() {
    let mut spec = tiny("gpt2");
    spec.model = "llama".into();
    assert!(matches!(Tokenizer::new(&spec), Err(Error::UnsupportedModel(m)) if m == "llama"));

    let mut spec = tiny("gpt2");
    spec.merges.push("nospace".into());
    assert!(matches!(
        Tokenizer::new(&spec),
        Err(Error::BadMerge { index: 6, .. })
    ));

    let mut spec = tiny("gpt2");
    spec.token_types.pop();
    assert!(matches!(
        Tokenizer::new(&spec),
        Err(Error::LengthMismatch { .. })
    ));

    let mut spec = tiny("gpt2");
    spec.tokens.clear();
    spec.token_types.clear();
    assert!(matches!(Tokenizer::new(&spec), Err(Error::EmptyVocab)));
}

#[test]
fn tiny_vocab_encodes() {
    let tok = Tokenizer::new(&tiny("whatever")).expect("builds");
    let the = id(&tok, "Ġthe");
    let t = id(&tok, "t");
    assert_eq!(tok.encode("the", false), [t, id(&tok, "he")]);
    assert_eq!(tok.encode(" the", false), [the]);
    // Unknown pre → GPT-2 rules: "123" is one piece.
    assert_eq!(tok.encode("123", false), [id(&tok, "123")]);
    let smol = Tokenizer::new(&tiny("smollm")).expect("builds");
    assert_eq!(
        smol.encode("123", false),
        [id(&smol, "1"), id(&smol, "2"), id(&smol, "3")]
    );
    let llama = Tokenizer::new(&tiny("llama-bpe")).expect("builds");
    assert_eq!(
        llama.encode("1234", false),
        [id(&llama, "123"), id(&llama, "4")]
    );
    assert_eq!(
        tok.decode(&tok.encode("héllo wörld\n", false), false),
        "héllo wörld\n"
    );
}

#[test]
fn special_tokens() {
    let tok = Tokenizer::new(&tiny("gpt2")).expect("builds");
    let end = id(&tok, "<|end|>");
    let tool = id(&tok, "<tool>");
    assert!(tok.is_special(end) && tok.is_special(tool));
    assert_eq!(tok.encode("<|end|>", true), [end]);
    assert_ne!(tok.encode("<|end|>", false), [end]);
    // User-defined tokens are matched even without special parsing (as llama.cpp).
    assert_eq!(tok.encode("<tool>", false), [tool]);
    assert_eq!(tok.decode(&[end, tool], true), "<tool>");
    assert_eq!(tok.decode(&[end, tool], false), "<|end|><tool>");
}
