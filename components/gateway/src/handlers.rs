//! The endpoints: `GET /v1/models`, `POST /v1/chat/completions` and
//! `POST /v1/completions` (OpenAI schema, streaming as server-sent events).

use crate::answer::Answer;
use crate::api::{self, Options, PromptInput};
use crate::choices::{Endpoint, Plan};
use crate::error::ApiError;
use crate::http;
use crate::parts::Part;
use crate::reka::inference::generate::Generation;
use crate::reka::inference::preprocess;
use crate::calls::CallParser;
use crate::reka::inference::types::{ChatMessage, ChatOptions, Constraint, ContentPart, MediaKind, Prompt, Sampling, ToolCall};
use crate::sampling::{self, Extras};
use crate::{structured, tools};
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
        .chain(crate::embeddings::embedding_models().into_iter().map(|id| {
            json!({"id": id, "object": "model", "created": created, "owned_by": "reka-host", "input_modalities": ["text"], "output_modalities": ["embeddings"]})
        }))
        .collect();
    json!({"object": "list", "data": data})
}

fn model_name(opts: &Options) -> Result<String, ApiError> {
    resolve_model(opts.model.as_deref())
}

/// The served model `model` names, or the default one.
pub fn resolve_model(model: Option<&str>) -> Result<String, ApiError> {
    let served = served_models();
    match model {
        Some(m) if served.iter().any(|s| s == m) => Ok(m.to_string()),
        Some(m) => Err(ApiError::model_not_found(m)),
        None => served
            .first()
            .cloned()
            .ok_or_else(|| ApiError::model_not_found("(default)")),
    }
}

/// The chat format's view of a request's messages.
pub fn turns(messages: Vec<api::Message>) -> Vec<ChatMessage> {
    messages
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: m.content.into_iter().map(content_part).collect(),
            tool_calls: m.tool_calls.into_iter().map(|c| ToolCall { id: c.id, name: c.name, arguments: c.arguments }).collect(),
            tool_call_id: m.tool_call_id,
        })
        .collect()
}

/// What shapes a request's answer besides sampling: its constraint, and
/// whether tool calls are read out of it.
#[derive(Default)]
struct Shape {
    constraint: Option<Constraint>,
    calls: bool,
}

/// `POST /v1/chat/completions`.
pub fn chat(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let prepared = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let opts = api::options(&o)?;
        let extras = sampling::extras(&o, true)?;
        let messages = api::messages(&o)?;
        let chat = api::chat_options(&o)?;
        let tools = tools::read(&o)?;
        let shape = Shape { constraint: structured::constraint(&o, tools.as_ref())?, calls: tools.as_ref().is_some_and(tools::Tools::parses_calls) };
        let model = model_name(&opts)?;
        // `tool_choice: none` still shows the tools (OpenAI's behaviour): the model only may not call them.
        let options = ChatOptions { enable_thinking: chat.enable_thinking, video_frames: chat.video_frames, tools: tools.map(|t| t.json) };
        let prompt = preprocess::encode_chat(&model, &turns(messages), &options)?;
        Ok::<_, ApiError>((model, vec![(prompt, None)], opts, extras, shape))
    })();
    match prepared {
        Ok((model, prompts, opts, extras, shape)) => generate(out, Endpoint::Chat, &model, prompts, &opts, &extras, shape),
        Err(e) => http::error(out, e),
    }
}

/// `POST /v1/completions`.
pub fn completions(req: IncomingRequest, out: ResponseOutparam) -> Result<(), String> {
    let prepared = (|| {
        let o = api::object(&http::read_body(&req)?)?;
        let opts = api::options(&o)?;
        let extras = sampling::extras(&o, false)?;
        let inputs = api::prompts(&o)?;
        let parse_special = api::parse_special(&o)?;
        let shape = Shape { constraint: structured::constraint(&o, None)?, calls: false };
        let model = model_name(&opts)?;
        let mut prompts = Vec::with_capacity(inputs.len());
        let mut base = None;
        for input in inputs {
            prompts.push(match input {
                PromptInput::Text(t) => (preprocess::encode_text(&model, &t, parse_special)?, Some(t)),
                // Token ids are taken as they are (no BOS added).
                PromptInput::Ids(ids) => {
                    let b = match &base {
                        Some(b) => b,
                        None => base.insert(preprocess::encode_text(&model, "", false)?),
                    };
                    (Prompt { token_ids: ids, ..b.clone() }, None)
                }
            });
        }
        Ok::<_, ApiError>((model, prompts, opts, extras, shape))
    })();
    match prepared {
        Ok((model, prompts, opts, extras, shape)) => generate(out, Endpoint::Completion, &model, prompts, &opts, &extras, shape),
        Err(e) => http::error(out, e),
    }
}

/// How many tokens to generate, or why the request cannot fit.
fn budget(endpoint: Endpoint, prompt: &Prompt, opts: &Options, extras: &Extras) -> Result<u32, ApiError> {
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
    if max == 0 && !extras.echo {
        return Err(ApiError::invalid("max_tokens", "`max_tokens` must be at least 1 (0 only with `echo`, to score the prompt)."));
    }
    if extras.min_tokens as u64 > max {
        return Err(ApiError::invalid("min_tokens", format!("`min_tokens` ({}) must not exceed `max_tokens` ({max}).", extras.min_tokens)));
    }
    if p + max > ctx || (max == 0 && p > ctx) {
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

/// Generates the answers of `prompts` (each with its text when the request
/// gave one) and writes the response.
fn generate(out: ResponseOutparam, ep: Endpoint, model: &str, mut prompts: Vec<(Prompt, Option<String>)>, opts: &Options, extras: &Extras, shape: Shape) -> Result<(), String> {
    let mut max_tokens = u32::MAX;
    for (p, _) in &prompts {
        match budget(ep, p, opts, extras) {
            Ok(m) => max_tokens = max_tokens.min(m),
            Err(e) => return http::error(out, e),
        }
    }
    let sampling = Sampling {
        max_tokens,
        temperature: opts.temperature,
        top_p: opts.top_p,
        top_k: opts.top_k,
        seed: opts.seed.unwrap_or_else(wasip2::random::random::get_random_u64),
        stop: opts.stop.clone(),
        presence_penalty: extras.presence_penalty,
        frequency_penalty: extras.frequency_penalty,
        repetition_penalty: extras.repetition_penalty,
        logit_bias: extras.logit_bias.clone(),
        min_tokens: extras.min_tokens,
        ignore_eos: extras.ignore_eos,
        logprobs: extras.logprobs,
        n: extras.n,
        repetition_window: 0,
        constraint: shape.constraint,
        // A model's `<tool_call>` tags may be special tokens: keep them to parse.
        skip_special_tokens: !shape.calls,
    };
    let first = &mut prompts[0].0;
    let media = std::mem::take(&mut first.media);
    let (stop_ids, stop_strings, reasoning) = (first.stop_token_ids.clone(), first.stop_strings.clone(), first.reasoning.clone());
    let prompt_tokens = PromptTokens::of(prompts.iter().map(|p| &p.0), &media);
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| p.0.token_ids.clone()).collect();
    let prompt_logprobs = if extras.echo { extras.logprobs } else { None };
    let gen = match Generation::start(model, &ids, &media, &stop_ids, &stop_strings, &sampling, prompt_logprobs) {
        Ok(g) => g,
        Err(e) => return http::error(out, e.into()),
    };
    drop(media); // the pixels are in the engine now
    let echo = if extras.echo {
        prompts
            .iter()
            .enumerate()
            .map(|(i, (_, text))| (text.clone().unwrap_or_else(|| gen.prompt_text(i as u32)), gen.prompt_logprobs(i as u32)))
            .collect()
    } else {
        Vec::new()
    };
    let id = format!("{}{:016x}", ep.id_prefix(), wasip2::random::random::get_random_u64());
    let plan = Plan {
        ep,
        stream: opts.stream,
        include_usage: opts.include_usage,
        prompts: ids.len() as u32,
        n: extras.n,
        logprobs: extras.logprobs.is_some(),
        naming: crate::logprobs::Naming { as_ids: extras.tokens_as_ids },
        echo,
        head: json!({"id": id, "object": ep.object(opts.stream), "created": now(), "model": model}),
        prompt_usage: prompt_tokens.usage(),
    };
    let make = || {
        let a = Answer::new(ep == Endpoint::Chat, reasoning.as_ref(), opts.reasoning);
        if shape.calls {
            a.with_calls(CallParser::new(Box::new(|| format!("call_{:016x}", wasip2::random::random::get_random_u64()))))
        } else {
            a
        }
    };
    if opts.stream {
        plan.stream(out, &gen, make)
    } else {
        plan.whole(out, &gen, make)
    }
}

/// The prompts' token count and how many of them are media placeholders.
struct PromptTokens {
    total: u32,
    /// Image, video, audio tokens.
    media: [u32; 3],
}

impl PromptTokens {
    fn of<'a>(prompts: impl Iterator<Item = &'a Prompt>, media_in: &[crate::reka::inference::types::MediaInput]) -> Self {
        let mut media = [0; 3];
        for m in media_in {
            let k = match m.kind {
                MediaKind::Image => 0,
                MediaKind::Video => 1,
                MediaKind::Audio => 2,
            };
            media[k] += m.tokens;
        }
        Self { total: prompts.map(|p| p.token_ids.len() as u32).sum(), media }
    }

    /// `prompt_tokens` and, with media, `prompt_tokens_details`.
    fn usage(&self) -> (u32, Option<Value>) {
        let details = (self.media != [0; 3]).then(|| {
            let [image, video, audio] = self.media;
            json!({"image_tokens": image, "video_tokens": video, "audio_tokens": audio})
        });
        (self.total, details)
    }
}

fn content_part(p: Part) -> ContentPart {
    match p {
        Part::Text(t) => ContentPart::Text(t),
        Part::Image(u) => ContentPart::Image(u),
        Part::Video(f) => ContentPart::Video(f),
        Part::Audio(u) => ContentPart::Audio(u),
    }
}
