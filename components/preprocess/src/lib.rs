//! The preprocess component: renders chat messages with the model's own chat
//! template and tokenises with the model's own vocabulary, both read through
//! wasi:nn model metadata.
//!
//! Special tokens come only from the template: request text (roles and
//! message contents) is marked as literal before rendering
//! ([`Tokenizer::mark_literal`]) and read as plain text when the rendered
//! prompt is tokenised ([`Tokenizer::encode_marked`]), so a message cannot
//! forge the model's role markers. A completions prompt is plain text unless
//! the request sets `parse_special`.

mod edge_chat;
mod fetch;
mod media;
mod pyjson;
mod template;
mod tokenize;
mod tools;

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
use media::{Piece, Prepared};
use reka::inference::types::{ChatMessage, ChatOptions, ContentPart, Error, ErrorKind, MediaInput, Prompt, ReasoningTags};
use reka_guest::Session;
use reka_protocol::ModelInfo;
use reka_tokenizer::Tokenizer;

struct Preprocess;

reka_guest::failure_to_wit_error!(Error, ErrorKind);

/// Reads the model's metadata and builds its tokenizer.
fn model(name: &str) -> Result<(ModelInfo, Tokenizer), Error> {
    Session::open(name).and_then(|s| s.model()).map_err(to_error)
}

/// How the text of a prompt becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    /// A rendered chat prompt: special tokens where the template wrote them;
    /// request text, marked by [`request_text`], is plain text.
    Template,
    /// A completions prompt: special token strings are parsed everywhere
    /// (the request's `parse_special`) or nowhere.
    Parse(bool),
}

/// Request text as a template gets it: media markers scrubbed ([`media::scrub`])
/// and special token strings marked as literal text.
fn request_text(tok: &Tokenizer, text: &str) -> String {
    tok.mark_literal(&media::scrub(text))
}

/// Tokenises a rendered prompt whose media markers are replaced by their
/// placeholder tokens (between the media's wrap tokens, if it has them);
/// `media` are the prepared parts the markers name. `thinking`: the prompt
/// opened the format's reasoning.
fn prompt(info: &ModelInfo, tok: &Tokenizer, text: &str, media: Vec<Prepared>, format: Option<template::Format>, thinking: bool, special: Special) -> Prompt {
    let mut ids = Vec::new();
    if let (true, Some(bos)) = (info.add_bos, info.bos_token_id) {
        ids.push(bos);
    }
    let placeholder = info.media.as_ref().map_or(0, |m| m.placeholder_id);
    let mut body = Vec::new();
    let mut spans = Vec::new();
    let mut media: Vec<Option<Prepared>> = media.into_iter().map(Some).collect();
    for piece in media::split(text) {
        match piece {
            Piece::Text(t) => body.extend(match special {
                Special::Template => tok.encode_marked(t),
                Special::Parse(parse) => tok.encode(t, parse),
            }),
            Piece::Media(i) => {
                if let Some(m) = media.get_mut(i).and_then(Option::take) {
                    let (n, wrap) = (m.tokens as usize, m.wrap);
                    body.extend(wrap.map(|w| w[0]));
                    spans.push((body.len(), m));
                    body.extend(std::iter::repeat_n(placeholder, n));
                    body.extend(wrap.map(|w| w[1]));
                }
            }
        }
    }
    // A template that writes BOS itself must not get a second one.
    if !ids.is_empty() && body.first() == ids.first() {
        ids.clear();
    }
    let offset = ids.len();
    ids.extend(body);
    let media = spans
        .into_iter()
        .map(|(at, m)| MediaInput {
            kind: m.kind,
            position: (offset + at) as u32,
            tokens: m.tokens,
            items: m.items,
            data: m.data,
        })
        .collect();
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
            opened: thinking,
        }),
        media,
    }
}

/// A chat request's prompt: `messages` rendered in the model's chat format
/// (media fetched and prepared), request text read as text.
fn chat_prompt(info: &ModelInfo, tok: &Tokenizer, messages: &[ChatMessage], options: ChatOptions) -> Result<Prompt, Error> {
    if messages.is_empty() {
        return Err(Error {
            kind: ErrorKind::InvalidRequest,
            message: "`messages` must not be empty".into(),
        });
    }
    let invalid = |message: String| Error { kind: ErrorKind::InvalidRequest, message };
    let format = template::Format::of(info);
    let tools = request_tools(tok, options.tools.as_deref()).map_err(invalid)?;
    let mut prepared = Vec::new();
    let mut turns = Vec::with_capacity(messages.len());
    for m in messages {
        // (is text, text or media marker)
        let mut pieces: Vec<(bool, String)> = Vec::with_capacity(m.content.len());
        for part in &m.content {
            match part {
                ContentPart::Text(t) => pieces.push((true, request_text(tok, t))),
                media => {
                    if let Some(p) = media::prepare(info, media, options.video_frames).map_err(invalid)? {
                        pieces.push((false, media::marker(prepared.len())));
                        prepared.push(p);
                    }
                }
            }
        }
        let content = if format == template::Format::RekaEdge {
            edge_chat::join_parts(pieces.iter().map(|(t, s)| (*t, s.as_str())))
        } else {
            pieces.into_iter().map(|p| p.1).collect()
        };
        let mut turn = template::Turn::new(&request_text(tok, &m.role), content);
        turn.calls = m
            .tool_calls
            .iter()
            .map(|c| template::Call { name: request_text(tok, &c.name), arguments: request_text(tok, &c.arguments) })
            .collect();
        turn.tool_call_id = m.tool_call_id.as_deref().map(|id| request_text(tok, id));
        turns.push(turn);
    }
    let thinking = options.enable_thinking == Some(true) && format.reasoning().is_some() && format == template::Format::RekaEdge;
    let text = template::render(info, tok, &turns, thinking, &tools).map_err(invalid)?;
    Ok(prompt(info, tok, &text, prepared, Some(format), thinking, Special::Template))
}

/// The request's tools (OpenAI's `tools` array as JSON text): each as
/// Python writes it, marked as request text, and as a value.
fn request_tools(tok: &Tokenizer, json: Option<&str>) -> Result<template::Tools, String> {
    let Some(json) = json else { return Ok(template::Tools::default()) };
    let values = match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => return Err("`tools` must be a JSON array".into()),
    };
    let texts = values.iter().map(|t| request_text(tok, &pyjson::dumps(t))).collect();
    Ok(template::Tools { texts, values })
}

/// A completions request's prompt: `text` as it is, special token strings
/// parsed only with `parse_special`.
fn text_prompt(info: &ModelInfo, tok: &Tokenizer, text: &str, parse_special: bool) -> Prompt {
    prompt(info, tok, &media::scrub(text), Vec::new(), None, false, Special::Parse(parse_special))
}

impl Guest for Preprocess {
    fn encode_chat(model_name: String, messages: Vec<ChatMessage>, options: ChatOptions) -> Result<Prompt, Error> {
        media::precheck(&messages).map_err(|message| Error { kind: ErrorKind::InvalidRequest, message })?;
        let (info, tok) = model(&model_name)?;
        chat_prompt(&info, &tok, &messages, options)
    }

    fn encode_text(model_name: String, text: String, parse_special: bool) -> Result<Prompt, Error> {
        let (info, tok) = model(&model_name)?;
        Ok(text_prompt(&info, &tok, &text, parse_special))
    }

    fn tokenize(model_name: String, text: String, add_special: bool) -> Result<Vec<u32>, Error> {
        let (info, tok) = model(&model_name)?;
        Ok(tokenize::tokenize(&info, &tok, &text, add_special))
    }

    fn detokenize(model_name: String, ids: Vec<u32>) -> Result<String, Error> {
        let (info, tok) = model(&model_name)?;
        tokenize::detokenize(&info, &tok, &ids)
    }

    fn tokenizer_info(model_name: String) -> Result<String, Error> {
        let (info, tok) = model(&model_name)?;
        Ok(tokenize::info_json(&info, &tok))
    }
}

export!(Preprocess);

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz_replay;
