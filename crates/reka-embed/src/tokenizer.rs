//! The BERT tokenizer of a `tokenizer.json` (Hugging Face's `BertTokenizerFast`):
//! special tokens written in the text are matched first, on the raw text; the
//! rest is normalised ([`crate::normalize`]), split into words
//! ([`crate::pretokenize`]) and cut into WordPiece pieces ([`crate::wordpiece`]);
//! the result is truncated and wrapped as `[CLS] … [SEP]`.

use crate::normalize::Normalizer;
use crate::pretokenize::split_words;
use crate::wordpiece::WordPiece;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// A BERT WordPiece tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    normalizer: Normalizer,
    wordpiece: WordPiece,
    /// Added tokens matched on the raw text, longest first.
    added: Vec<(String, u32)>,
    cls: u32,
    sep: u32,
    max_len: usize,
}

#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    normalizer: Option<NormalizerJson>,
    pre_tokenizer: Option<Typed>,
    post_processor: Option<serde_json::Value>,
    model: ModelJson,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    normalized: bool,
}

#[derive(Deserialize)]
struct NormalizerJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    clean_text: bool,
    #[serde(default = "yes")]
    handle_chinese_chars: bool,
    #[serde(default)]
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    lowercase: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: String,
    unk_token: String,
    #[serde(default = "hashes")]
    continuing_subword_prefix: String,
    #[serde(default = "hundred")]
    max_input_chars_per_word: usize,
    vocab: HashMap<String, u32>,
}

fn hashes() -> String {
    "##".into()
}

fn hundred() -> usize {
    100
}

impl Tokenizer {
    /// Reads `tokenizer.json`; `max_len` is the longest output, [CLS] and [SEP]
    /// included.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Tokenizer> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Tokenizer::from_json(&text, max_len).with_context(|| format!("loading {}", path.display()))
    }

    /// Parses the text of a `tokenizer.json`.
    pub fn from_json(json: &str, max_len: usize) -> Result<Tokenizer> {
        let t: TokenizerJson = serde_json::from_str(json).context("parsing tokenizer.json")?;
        if t.model.kind != "WordPiece" {
            bail!("model type {:?} is not WordPiece", t.model.kind);
        }
        let normalizer = match &t.normalizer {
            Some(n) if n.kind == "BertNormalizer" => Normalizer {
                clean_text: n.clean_text,
                handle_chinese_chars: n.handle_chinese_chars,
                // Unset means: strip accents when lowercasing.
                strip_accents: n.strip_accents.unwrap_or(n.lowercase),
                lowercase: n.lowercase,
            },
            Some(n) => bail!("normalizer {:?} is not BertNormalizer", n.kind),
            None => bail!("tokenizer.json has no normalizer"),
        };
        match &t.pre_tokenizer {
            Some(p) if p.kind == "BertPreTokenizer" => {}
            Some(p) => bail!("pre_tokenizer {:?} is not BertPreTokenizer", p.kind),
            None => bail!("tokenizer.json has no pre_tokenizer"),
        }
        let unk = *t
            .model
            .vocab
            .get(&t.model.unk_token)
            .context("the unknown token is not in the vocabulary")?;
        let mut added = Vec::new();
        for a in t.added_tokens {
            if a.normalized || a.single_word || a.lstrip || a.rstrip {
                bail!(
                    "added token {:?}: normalized/single_word/lstrip/rstrip are not supported",
                    a.content
                );
            }
            if !a.content.is_empty() {
                added.push((a.content, a.id));
            }
        }
        added.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
        let (cls, sep) = special_ids(t.post_processor.as_ref())?;
        if max_len < 2 {
            bail!("max_len {max_len} leaves no room for [CLS] and [SEP]");
        }
        let wordpiece = WordPiece::new(
            t.model.vocab,
            unk,
            &t.model.continuing_subword_prefix,
            t.model.max_input_chars_per_word,
        );
        Ok(Tokenizer {
            normalizer,
            wordpiece,
            added,
            cls,
            sep,
            max_len,
        })
    }

    /// The ids of `text`: `[CLS]`, at most `max_len - 2` pieces, `[SEP]`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let limit = self.max_len - 2;
        let mut ids = Vec::with_capacity(64);
        ids.push(self.cls);
        let mut rest = text;
        while !rest.is_empty() && ids.len() <= limit {
            let (before, special) = self.next_added(rest);
            for word in split_words(&self.normalizer.normalize(before)) {
                self.wordpiece.tokenize_word(word, &mut ids);
                if ids.len() > limit {
                    break;
                }
            }
            match special {
                Some((id, len)) => {
                    ids.push(id);
                    rest = &rest[before.len() + len..];
                }
                None => rest = "",
            }
        }
        ids.truncate(limit + 1);
        ids.push(self.sep);
        ids
    }

    /// The text before the leftmost added token in `text`, and that token's id
    /// and byte length (the longest one where several start at the same place).
    fn next_added<'a>(&self, text: &'a str) -> (&'a str, Option<(u32, usize)>) {
        let mut best: Option<(usize, u32, usize)> = None;
        for (content, id) in &self.added {
            if let Some(pos) = text.find(content.as_str()) {
                if best.is_none_or(|(p, _, _)| pos < p) {
                    best = Some((pos, *id, content.len()));
                }
            }
        }
        match best {
            Some((pos, id, len)) => (&text[..pos], Some((id, len))),
            None => (text, None),
        }
    }

    /// The longest output in tokens, [CLS] and [SEP] included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The WordPiece vocabulary.
    pub fn wordpiece(&self) -> &WordPiece {
        &self.wordpiece
    }
}

/// The [CLS] and [SEP] ids from the post-processor (`TemplateProcessing` or
/// `BertProcessing`).
fn special_ids(post: Option<&serde_json::Value>) -> Result<(u32, u32)> {
    let post = post.context("tokenizer.json has no post_processor")?;
    let id = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let ids = match post.get("type").and_then(|t| t.as_str()) {
        Some("TemplateProcessing") => {
            let special = |name: &str| id(post.pointer(&format!("/special_tokens/{name}/ids/0")));
            let single = post.get("single").and_then(|s| s.as_array()).map(|s| {
                s.iter()
                    .map(|p| {
                        p.pointer("/SpecialToken/id")
                            .and_then(|v| v.as_str())
                            .unwrap_or(if p.get("Sequence").is_some() {
                                "A"
                            } else {
                                "?"
                            })
                    })
                    .collect::<Vec<_>>()
            });
            if single.as_deref() != Some(&["[CLS]", "A", "[SEP]"][..]) {
                bail!("the post-processor's single template is {single:?}, not [CLS] A [SEP]");
            }
            special("[CLS]").zip(special("[SEP]"))
        }
        Some("BertProcessing") => id(post.pointer("/cls/1")).zip(id(post.pointer("/sep/1"))),
        other => bail!("post_processor {other:?} is not TemplateProcessing or BertProcessing"),
    };
    ids.context("the post-processor does not give the [CLS] and [SEP] ids")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer(max_len: usize) -> Tokenizer {
        let words = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "!", "cafe", "中",
            "文", "un", "##aff", "##able", ",", "$", "3", "##4",
        ];
        let vocab: serde_json::Map<String, serde_json::Value> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i.into()))
            .collect();
        let added: Vec<_> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .enumerate()
            .map(|(i, w)| serde_json::json!({"id": i, "content": w, "normalized": false}))
            .collect();
        let json = serde_json::json!({
            "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                   "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab}
        });
        match Tokenizer::from_json(&json.to_string(), max_len) {
            Ok(t) => t,
            Err(e) => panic!("{e:#}"),
        }
    }

    #[test]
    fn full_pipeline() {
        let t = tokenizer(512);
        assert_eq!(t.encode("Hello, WORLD!"), [2, 5, 14, 6, 7, 3]);
        assert_eq!(
            t.encode("Café 中文 unaffable $34"),
            [2, 8, 9, 10, 11, 12, 13, 15, 16, 17, 3]
        );
        assert_eq!(t.encode("hello xyz"), [2, 5, 1, 3]);
        assert_eq!(t.encode(""), [2, 3]);
        assert_eq!(t.encode(" \t\n"), [2, 3]);
    }

    #[test]
    fn special_tokens_in_the_text() {
        let t = tokenizer(512);
        assert_eq!(t.encode("hello[MASK]world [SEP]"), [2, 5, 4, 6, 3, 3]);
        // Only the exact, case-sensitive spelling is special.
        assert_eq!(t.encode("[mask]"), [2, 1, 1, 1, 3]);
    }

    #[test]
    fn truncates_to_max_len() {
        let t = tokenizer(4);
        assert_eq!(t.encode("hello world hello"), [2, 5, 6, 3]);
        assert_eq!(t.encode("unaffable"), [2, 11, 12, 3]);
        assert_eq!(t.encode("hello [MASK] world"), [2, 5, 4, 3]);
        assert_eq!(t.encode("hello"), [2, 5, 3]);
    }
}
