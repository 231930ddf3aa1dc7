//! The preprocess component: renders chat messages with the model's own chat
//! template and tokenises with the model's own vocabulary, both read through
//! wasi:nn model metadata.

mod template;

wit_bindgen::generate!({
    world: "preprocessor",
    path: "../../wit",
    with: {
        "wasi:nn/graph@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::graph,
        "wasi:nn/inference@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::inference,
        "wasi:nn/tensor@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::tensor,
        "wasi:nn/errors@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::errors,
    },
});

use exports::reka::inference::preprocess::Guest;
use reka::inference::types::{ChatMessage, Error, ErrorKind, Prompt, ReasoningTags};
use reka_guest::Session;
use reka_protocol::ModelInfo;
use reka_tokenizer::Tokenizer;

struct Preprocess;

reka_guest::failure_to_wit_error!(Error, ErrorKind);

/// Reads the model's metadata and builds its tokenizer.
fn model(name: &str) -> Result<(ModelInfo, Tokenizer), Error> {
    Session::open(name).and_then(|s| s.model()).map_err(to_error)
}

fn prompt(info: &ModelInfo, tok: &Tokenizer, text: &str, parse_special: bool, format: Option<template::Format>) -> Prompt {
    let mut ids = Vec::new();
    if let (true, Some(bos)) = (info.add_bos, info.bos_token_id) {
        ids.push(bos);
    }
    let body = tok.encode(text, parse_special);
    // A template that writes BOS itself must not get a second one.
    if !ids.is_empty() && body.first() == ids.first() {
        ids.clear();
    }
    ids.extend(body);
    let mut stop_strings = info.stop_strings.clone();
    for s in format.map(|f| f.stop_strings()).unwrap_or_default() {
        if !stop_strings.iter().any(|x| x == s) {
            stop_strings.push(s.to_string());
        }
    }
    Prompt {
        token_ids: ids,
        context_length: info.context_length,
        stop_token_ids: info.stop_token_ids.clone(),
        stop_strings,
        reasoning: format.and_then(|f| f.reasoning()).map(|(start, end)| ReasoningTags {
            start: start.into(),
            end: end.into(),
        }),
    }
}

impl Guest for Preprocess {
    fn encode_chat(model_name: String, messages: Vec<ChatMessage>) -> Result<Prompt, Error> {
        if messages.is_empty() {
            return Err(Error {
                kind: ErrorKind::InvalidRequest,
                message: "`messages` must not be empty".into(),
            });
        }
        let (info, tok) = model(&model_name)?;
        let turns: Vec<template::Turn> = messages
            .iter()
            .map(|m| template::Turn {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let text = template::render(&info, &tok, &turns).map_err(|message| Error {
            kind: ErrorKind::InvalidRequest,
            message,
        })?;
        Ok(prompt(&info, &tok, &text, true, Some(template::Format::of(&info))))
    }

    fn encode_text(model_name: String, text: String) -> Result<Prompt, Error> {
        let (info, tok) = model(&model_name)?;
        Ok(prompt(&info, &tok, &text, true, None))
    }
}

export!(Preprocess);
