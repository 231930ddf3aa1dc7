//! Turns a generation's chunks into the response: one choice per answer
//! (prompt × n, `index` in order), whole or streamed as server-sent events,
//! with log-probs and echo where the request asked for them.

use crate::answer::{Answer, Split};
use crate::calls::CallDelta;
use crate::error::ApiError;
use crate::http::{self, BodyWriter};
use crate::logprobs;
use crate::reka::inference::generate::Generation;
use crate::reka::inference::types::{FinishReason, TokenLogprob};
use serde_json::{json, Value};
use wasip2::http::types::ResponseOutparam;

/// Which endpoint is answering: they differ only in JSON shapes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    pub fn id_prefix(self) -> &'static str {
        match self {
            Endpoint::Chat => "chatcmpl-",
            Endpoint::Completion => "cmpl-",
        }
    }
    pub fn object(self, stream: bool) -> &'static str {
        match (self, stream) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }
}

/// What the response is made of besides the chunks.
pub struct Plan {
    pub ep: Endpoint,
    pub stream: bool,
    pub include_usage: bool,
    /// Prompts, and answers per prompt.
    pub prompts: u32,
    pub n: u32,
    pub logprobs: bool,
    pub naming: logprobs::Naming,
    /// Per prompt, with `echo`: its text and its scored tokens.
    pub echo: Vec<(String, Vec<TokenLogprob>)>,
    pub head: Value,
    /// The usage's prompt part (`prompt_tokens`, details).
    pub prompt_usage: (u32, Option<Value>),
}

/// One answer as it is written out.
struct Choice {
    answer: Answer,
    text: Split,
    finish: Option<&'static str>,
    completion: u32,
    logprobs: Vec<TokenLogprob>,
    /// Characters written so far (completions' `text_offset`).
    offset: usize,
    first: bool,
}

fn reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// An answer's tool calls, whole, as a message's `tool_calls`.
fn whole_calls(deltas: &[CallDelta]) -> Vec<Value> {
    let mut calls: Vec<Value> = Vec::new();
    for d in deltas {
        if let Some((id, name)) = &d.head {
            calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": ""}}));
        }
        if let Some(a) = calls.get_mut(d.index as usize).and_then(|c| c["function"]["arguments"].as_str().map(|s| s.to_string() + &d.arguments)) {
            calls[d.index as usize]["function"]["arguments"] = json!(a);
        }
    }
    calls
}

/// Tool-call deltas as a stream chunk's `tool_calls`.
fn streamed_calls(deltas: &[CallDelta]) -> Vec<Value> {
    deltas
        .iter()
        .map(|d| match &d.head {
            Some((id, name)) => json!({"index": d.index, "id": id, "type": "function", "function": {"name": name, "arguments": d.arguments}}),
            None => json!({"index": d.index, "function": {"arguments": d.arguments}}),
        })
        .collect()
}

fn with(head: &Value, fields: Value) -> Value {
    let mut v = head.clone();
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    v
}

impl Plan {
    fn usage(&self, completion: u32) -> Value {
        let (prompt, details) = &self.prompt_usage;
        let mut u = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
        if let Some(d) = details {
            u["prompt_tokens_details"] = d.clone();
        }
        u
    }

    /// One choice carrying `text` and the log-probs of `lps`.
    fn choice(&self, index: u32, c: &mut Choice, text: &Split, lps: &[TokenLogprob], finish: Option<&str>) -> Value {
        let lp = match (self.logprobs, self.ep) {
            (false, _) => Value::Null,
            (true, Endpoint::Chat) => logprobs::chat(lps, self.naming),
            (true, Endpoint::Completion) => {
                let (v, end) = logprobs::completion(lps, c.offset, self.naming);
                c.offset = end;
                v
            }
        };
        // A stop after tool calls is reported as OpenAI does.
        let finish = match finish {
            Some("stop") if c.answer.made_calls() => Some("tool_calls"),
            f => f,
        };
        match (self.ep, self.stream) {
            (Endpoint::Chat, false) => {
                let calls = whole_calls(&text.calls);
                let content = if text.content.is_empty() && !calls.is_empty() { Value::Null } else { json!(text.content) };
                let mut message = json!({"role": "assistant", "content": content});
                if !calls.is_empty() {
                    message["tool_calls"] = json!(calls);
                }
                if text.parsed {
                    let r = &text.reasoning;
                    message["reasoning_content"] = if r.is_empty() { Value::Null } else { json!(r) };
                }
                json!({"index": index, "message": message, "logprobs": lp, "finish_reason": finish, "stop_reason": null})
            }
            (Endpoint::Chat, true) => {
                let mut delta = if c.first { json!({"role": "assistant"}) } else { json!({}) };
                if !text.reasoning.is_empty() {
                    delta["reasoning_content"] = json!(text.reasoning);
                }
                if !text.calls.is_empty() {
                    delta["tool_calls"] = json!(streamed_calls(&text.calls));
                    if c.first && text.content.is_empty() {
                        delta["content"] = Value::Null;
                    }
                }
                // After tool calls an empty delta is `{}`, as OpenAI sends it.
                if !text.content.is_empty() || (text.reasoning.is_empty() && text.calls.is_empty() && !c.answer.made_calls()) {
                    delta["content"] = json!(text.content);
                }
                c.first = false;
                json!({"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish, "stop_reason": null})
            }
            (Endpoint::Completion, _) => json!({"index": index, "text": text.content, "logprobs": lp, "finish_reason": finish, "stop_reason": null}),
        }
    }

    fn choices(&self, make: impl Fn() -> Answer) -> Vec<Choice> {
        (0..self.prompts * self.n)
            .map(|_| Choice { answer: make(), text: Split::default(), finish: None, completion: 0, logprobs: Vec::new(), offset: 0, first: true })
            .collect()
    }

    /// The echoed prompt of choice `index`: its text and scored tokens.
    fn echo_of(&self, index: u32) -> Option<&(String, Vec<TokenLogprob>)> {
        self.echo.get((index / self.n.max(1)) as usize)
    }

    /// The whole answer as one JSON body.
    pub fn whole(&self, out: ResponseOutparam, gen: &Generation, make: impl Fn() -> Answer) -> Result<(), String> {
        let mut cs = self.choices(make);
        for (i, c) in cs.iter_mut().enumerate() {
            if let Some((text, lps)) = self.echo_of(i as u32) {
                c.text.content.push_str(text);
                c.logprobs.extend(lps.iter().cloned());
            }
        }
        loop {
            match gen.next() {
                Ok(Some(k)) => {
                    let Some(c) = cs.get_mut(k.index as usize) else { continue };
                    let s = c.answer.push(&k.text, k.finish.is_some());
                    c.text.content.push_str(&s.content);
                    c.text.reasoning.push_str(&s.reasoning);
                    c.text.parsed = s.parsed;
                    c.text.calls.extend(s.calls);
                    c.completion = k.completion_tokens;
                    c.logprobs.extend(k.logprobs);
                    if let Some(f) = k.finish {
                        c.finish = Some(reason(f));
                    }
                }
                Ok(None) => break,
                Err(e) => return http::error(out, e.into()),
            }
        }
        let completion = cs.iter().map(|c| c.completion).sum();
        let choices: Vec<Value> = (0..cs.len())
            .map(|i| {
                let c = &mut cs[i];
                let (text, lps, finish) = (std::mem::take(&mut c.text), std::mem::take(&mut c.logprobs), c.finish.unwrap_or("length"));
                self.choice(i as u32, c, &text, &lps, Some(finish))
            })
            .collect();
        http::json(out, 200, &with(&self.head, json!({"choices": choices, "usage": self.usage(completion)})))
    }

    /// The answer as server-sent events, one chunk of one choice per event.
    pub fn stream(&self, out: ResponseOutparam, gen: &Generation, make: impl Fn() -> Answer) -> Result<(), String> {
        let mut w = BodyWriter::start(out, 200, "text/event-stream", &[("cache-control", "no-cache")])?;
        let mut cs = self.choices(make);
        for (i, c) in cs.iter_mut().enumerate() {
            if let Some((text, lps)) = self.echo_of(i as u32) {
                let split = Split { content: text.clone(), ..Split::default() };
                let choice = self.choice(i as u32, c, &split, lps, None);
                w.event(&with(&self.head, json!({"choices": [choice]})))?;
            }
        }
        loop {
            match gen.next() {
                Ok(Some(k)) => {
                    let Some(c) = cs.get_mut(k.index as usize) else { continue };
                    c.completion = k.completion_tokens;
                    let finish = k.finish.map(reason);
                    let text = c.answer.push(&k.text, finish.is_some());
                    if !text.is_empty() || finish.is_some() || c.first || !k.logprobs.is_empty() {
                        let choice = self.choice(k.index, c, &text, &k.logprobs, finish);
                        // A failed write means the client left: stop generating.
                        w.event(&with(&self.head, json!({"choices": [choice]})))?;
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
        if self.include_usage {
            let completion = cs.iter().map(|c| c.completion).sum();
            w.event(&with(&self.head, json!({"choices": [], "usage": self.usage(completion)})))?;
        }
        w.write(b"data: [DONE]\n\n")?;
        w.finish()
    }
}
