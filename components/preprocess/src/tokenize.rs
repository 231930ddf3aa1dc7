//! vLLM's tokenizer endpoints (`/tokenize`, `/detokenize`, `/tokenizer_info`)
//! over the model's own tokenizer, so that a client such as lm-evaluation-harness
//! (`tokenizer_backend=remote`) counts and splits tokens exactly as the server
//! does.

use crate::reka::inference::types::{Error, ErrorKind};
use reka_protocol::ModelInfo;
use reka_tokenizer::Tokenizer;
use serde_json::json;

/// `text` as tokens, special token strings parsed; BOS first with
/// `add_special` when the model wants one.
pub fn tokenize(info: &ModelInfo, tok: &Tokenizer, text: &str, add_special: bool) -> Vec<u32> {
    let mut ids = Vec::new();
    if let (true, true, Some(bos)) = (add_special, info.add_bos, info.bos_token_id) {
        ids.push(bos);
    }
    ids.extend(tok.encode(text, true));
    ids
}

/// `ids` as text, special tokens written out.
pub fn detokenize(info: &ModelInfo, tok: &Tokenizer, ids: &[u32]) -> Result<String, Error> {
    if let Some(bad) = ids.iter().find(|&&i| i >= info.vocab_size) {
        return Err(Error { kind: ErrorKind::InvalidRequest, message: format!("token id {bad} is not below the vocabulary size {}", info.vocab_size) });
    }
    Ok(tok.decode(ids, false))
}

/// The tokenizer's settings, in the keys of a Hugging Face tokenizer config
/// (what vLLM's `/tokenizer_info` returns).
pub fn info_json(info: &ModelInfo, tok: &Tokenizer) -> String {
    let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).map(str::to_string);
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": text(info.bos_token_id),
        "eos_token": text(info.eos_token_id),
        "pad_token": null,
        "unk_token": null,
        "add_bos_token": info.add_bos,
        "add_eos_token": false,
        "model_max_length": info.context_length,
        "vocab_size": info.vocab_size,
        "chat_template": info.chat_template,
    })
    .to_string()
}
