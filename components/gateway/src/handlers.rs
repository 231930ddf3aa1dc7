//! The endpoints: `GET /v1/models`, `POST /v1/chat/completions` and
//! `POST /v1/completions` (OpenAI schema, streaming as server-sent events).

use crate::api::{self, Options, PromptInput};
use crate::error::ApiError;
use crate::http::{self, BodyWriter};
use crate::answer::{Answer, Split};
use crate::reka::inference::generate::Generation;
use crate::reka::inference::preprocess;
use crate::parts::Part;
use crate::reka::inference::types::{ChatMessage, ChatOptions, ContentPart, FinishReason, MediaKind, Prompt, Sampling};
use serde_json::{json, Value};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

/// The served model names, the default first (set by the host).
fn served_models() -> Vec<String> {
    served().into_iter().map(|(name, _)| name).collect()
}

/// The served models and their input modalities: the host writes
/// `name[text+image],other[text]` (a plain name list is read as text only).
fn served() -> Vec<(String, Vec<String>)> {
    std::env::var("REKA_MODEL_INPUTS")
        .or_else(|_| std::env::var("REKA_MODELS"))
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|entry| match entry.split_once('[') {
            Some((name, rest)) => {
                let mods = rest.trim_end_matches(']').split('+').map(str::to_string).collect();
                (name.to_string(), mods)
            }
            None => (entry.to_string(), vec!["text".to_string()]),
        })
        .collect()
}

fn now() -> u64 {
    wasip2::clocks::wall_clock::now().seconds
}

/// `GET /v1/models`.
pub fn models() -> Value {
    let created = now();
    let data: Vec<Value> = served()
        .into_iter()
        .map(|(id, mods)| {
            json!({"id": id, "object": "model", "created": created, "owned_by": "reka-host", "input_modalities": mods, "output_modalities": ["text"]})
        })
        .collect();
    json!({"object": "list", "data": data})
}

/// Which endpoint is answering: they differ only in JSON shapes.
#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    fn id_prefix(self) -> &'static str {
        match self {
            Endpoint::Chat => "chatcmpl-",
            Endpoint::Completion => "cmpl-",
        }
    }
    fn object(self, stream: bool) -> &'static str {
        match (self, stream) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }
    /// One choice carrying `text` (with its reasoning apart where there is one).
    fn choice(self, text: &Split, finish: Option<&str>, stream: bool, first: bool) -> Value {
        match (self, stream) {
            (Endpoint::Chat, false) => {
                let mut message = json!({"role": "assistant", "content": text.content});
                if text.parsed {
                    let r = &text.reasoning;
                    message["reasoning_content"] = if r.is_empty() { Value::Null } else { json!(r) };
                }
                json!({"index": 0, "message": message, "logprobs": null, "finish_reason": finish})
            }
            (Endpoint::Chat, true) => {
                let mut delta = if first { json!({"role": "assistant"}) } else { json!({}) };
                if !text.reasoning.is_empty() {
                    delta["reasoning_content"] = json!(text.reasoning);
                }
                if !text.content.is_empty() || text.reasoning.is_empty() {
                    delta["content"] = json!(text.content);
                }
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            (Endpoint::Completion, _) => json!({"index": 0, "text": text.content, "logprobs": null, "finish_reason": finish}),
        }
    }
}

fn model_name(opts: &Options) -> Result<String, ApiError> {
    let served = served_models();
    match &opts.model {
        Some(m) if served.iter().any(|s| s == m) => Ok(m.clone()),
        Some(m) => Err(ApiError::model_not_found(m)),
        None => served
            .first()
            .cloned()
            .ok_or_else(|| ApiError::model_not_found("(default)")),
    }
}

/// `POST /v1/chat/completions`.
pub fn chat(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let prepared = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let opts = api::options(&o)?;
        let messages = api::messages(&o)?;
        let chat = api::chat_options(&o)?;
        let model = model_name(&opts)?;
        let turns: Vec<ChatMessage> = messages
            .into_iter()
            .map(|m| ChatMessage { role: m.role, content: m.content.into_iter().map(content_part).collect() })
            .collect();
        let options = ChatOptions { enable_thinking: chat.enable_thinking, video_frames: chat.video_frames };
        let prompt = preprocess::encode_chat(&model, &turns, options)?;
        Ok::<_, ApiError>((model, prompt, opts))
    })();
    match prepared {
        Ok((model, prompt, opts)) => generate(out, Endpoint::Chat, &model, prompt, &opts),
        Err(e) => http::error(out, e),
    }
}

/// `POST /v1/completions`.
pub fn completions(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let prepared = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let opts = api::options(&o)?;
        let input = api::prompt(&o)?;
        let parse_special = api::parse_special(&o)?;
        let model = model_name(&opts)?;
        let prompt = match input {
            PromptInput::Text(t) => preprocess::encode_text(&model, &t, parse_special)?,
            PromptInput::Ids(ids) => Prompt {
                token_ids: ids,
                ..preprocess::encode_text(&model, "", false)?
            },
        };
        Ok::<_, ApiError>((model, prompt, opts))
    })();
    match prepared {
        Ok((model, prompt, opts)) => generate(out, Endpoint::Completion, &model, prompt, &opts),
        Err(e) => http::error(out, e),
    }
}

/// How many tokens to generate, or why the request cannot fit.
fn budget(endpoint: Endpoint, prompt: &Prompt, opts: &Options) -> Result<u32, ApiError> {
    let ctx = prompt.context_length as u64;
    let p = prompt.token_ids.len() as u64;
    if p == 0 {
        return Err(ApiError::invalid("prompt", "The prompt is empty."));
    }
    let default = match endpoint {
        Endpoint::Chat => ctx.saturating_sub(p),
        Endpoint::Completion => 16u64.min(ctx.saturating_sub(p)),
    };
    let max = opts.max_tokens.map(u64::from).unwrap_or(default);
    if p + max > ctx || max == 0 {
        return Err(ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::invalid(
                "max_tokens",
                format!(
                    "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({p} in the prompt, {max} in the completion). Please reduce the length of the prompt or the completion.",
                    p + max
                ),
            )
        });
    }
    Ok(max as u32)
}

fn generate(out: ResponseOutparam, ep: Endpoint, model: &str, prompt: Prompt, opts: &Options) -> Result<(), String> {
    let max_tokens = match budget(ep, &prompt, opts) {
        Ok(m) => m,
        Err(e) => return http::error(out, e),
    };
    let sampling = Sampling {
        max_tokens,
        temperature: opts.temperature,
        top_p: opts.top_p,
        top_k: opts.top_k,
        seed: opts.seed.unwrap_or_else(wasip2::random::random::get_random_u64),
        stop: opts.stop.clone(),
    };
    let gen = match Generation::start(model, &prompt.token_ids, &prompt.media, &prompt.stop_token_ids, &prompt.stop_strings, &sampling) {
        Ok(g) => g,
        Err(e) => return http::error(out, e.into()),
    };
    let id = format!("{}{:016x}", ep.id_prefix(), wasip2::random::random::get_random_u64());
    let head = json!({"id": id, "object": ep.object(opts.stream), "created": now(), "model": model});
    let prompt_tokens = PromptTokens::of(&prompt);
    drop(prompt.media); // the pixels are in the engine now
    let answer = Answer::new(matches!(ep, Endpoint::Chat), prompt.reasoning.as_ref(), opts.reasoning);
    if opts.stream {
        stream(out, ep, &gen, answer, head, prompt_tokens, opts.include_usage)
    } else {
        whole(out, ep, &gen, answer, head, prompt_tokens)
    }
}

/// The prompt's token count and how many of them are media placeholders.
#[derive(Clone, Copy)]
struct PromptTokens {
    total: u32,
    /// Image, video, audio tokens.
    media: [u32; 3],
}

impl PromptTokens {
    fn of(p: &Prompt) -> Self {
        let mut media = [0; 3];
        for m in &p.media {
            let k = match m.kind {
                MediaKind::Image => 0,
                MediaKind::Video => 1,
                MediaKind::Audio => 2,
            };
            media[k] += m.tokens;
        }
        Self { total: p.token_ids.len() as u32, media }
    }
}

fn usage(prompt: PromptTokens, completion: u32) -> Value {
    let mut u = json!({"prompt_tokens": prompt.total, "completion_tokens": completion, "total_tokens": prompt.total + completion});
    if prompt.media != [0; 3] {
        let [image, video, audio] = prompt.media;
        u["prompt_tokens_details"] = json!({"image_tokens": image, "video_tokens": video, "audio_tokens": audio});
    }
    u
}

fn content_part(p: Part) -> ContentPart {
    match p {
        Part::Text(t) => ContentPart::Text(t),
        Part::Image(u) => ContentPart::Image(u),
        Part::Video(f) => ContentPart::Video(f),
        Part::Audio(u) => ContentPart::Audio(u),
    }
}

fn reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn with(head: &Value, fields: Value) -> Value {
    let mut v = head.clone();
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    v
}

fn whole(out: ResponseOutparam, ep: Endpoint, gen: &Generation, mut answer: Answer, head: Value, prompt_tokens: PromptTokens) -> Result<(), String> {
    let mut text = String::new();
    let mut completion = 0;
    let mut finish = "length";
    loop {
        match gen.next() {
            Ok(Some(c)) => {
                text.push_str(&c.text);
                completion = c.completion_tokens;
                if let Some(f) = c.finish {
                    finish = reason(f);
                }
            }
            Ok(None) => break,
            Err(e) => return http::error(out, e.into()),
        }
    }
    let body = with(&head, json!({
        "choices": [ep.choice(&answer.push(&text, true), Some(finish), false, true)],
        "usage": usage(prompt_tokens, completion),
    }));
    http::json(out, 200, &body)
}

fn stream(
    out: ResponseOutparam,
    ep: Endpoint,
    gen: &Generation,
    mut answer: Answer,
    head: Value,
    prompt_tokens: PromptTokens,
    include_usage: bool,
) -> Result<(), String> {
    let mut w = BodyWriter::start(out, 200, "text/event-stream", &[("cache-control", "no-cache")])?;
    let mut first = true;
    let mut completion = 0;
    loop {
        match gen.next() {
            Ok(Some(c)) => {
                completion = c.completion_tokens;
                let finish = c.finish.map(reason);
                let text = answer.push(&c.text, finish.is_some());
                if !text.is_empty() || finish.is_some() || first {
                    let chunk = with(&head, json!({"choices": [ep.choice(&text, finish, true, first)]}));
                    w.event(&chunk)?; // a failed write means the client left: stop generating
                    first = false;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let e: ApiError = e.into();
                w.event(&e.body())?;
                break;
            }
        }
    }
    if include_usage {
        w.event(&with(&head, json!({"choices": [], "usage": usage(prompt_tokens, completion)})))?;
    }
    w.write(b"data: [DONE]\n\n")?;
    w.finish()
}
