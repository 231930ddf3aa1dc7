//! The generate component: the decode loop. A generation holds every answer of
//! a request (its prompts × `n`), each on a stream of one wasi:nn execution
//! context; all prompts are prefilled in one step and the `n` answers of a
//! prompt are forked from its prefill. Each round runs one forward step for
//! every unfinished answer at once, samples their tokens (after the request's
//! penalties, which the host applies), detokenises them incrementally, applies
//! stop tokens, stop strings and the token budget, and hands the chunks out one
//! by one, so the gateway can stream them as they are made.

mod answer;
mod constraint;
mod penalties;
mod sampler;
mod stops;

wit_bindgen::generate!({
    world: "generator",
    path: "../../wit",
    with: {
        "wasi:nn/graph@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::graph,
        "wasi:nn/inference@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::inference,
        "wasi:nn/tensor@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::tensor,
        "wasi:nn/errors@0.2.0-rc-2024-10-28": reka_guest::wasi::nn::errors,
    },
});

use answer::{Answer, Rules, Shared};
use exports::reka::inference::generate::{Generation, Guest, GuestGeneration};
use penalties::{Penalties, Settings};
use reka::inference::types::{Chunk, Embeddings, Error, ErrorKind, MediaInput, MediaKind, Sampling, TokenLogprob};
use reka_guest::{Ask, Session, StepMedia};
use reka_protocol::logprobs::{Scored, MAX_TOP_LOGPROBS};
use reka_protocol::MediaSpan;
use sampler::Sampler;
use std::cell::RefCell;
use std::collections::VecDeque;

struct Component;

reka_guest::failure_to_wit_error!(Error, ErrorKind);

/// Most answers a generation may hold (prompts × n).
const MAX_ANSWERS: usize = 256;

/// The loop's state between `next` calls.
struct State {
    session: Session,
    shared: Shared,
    answers: Vec<Answer>,
    /// Chunks made in the last round, not yet handed out.
    queue: VecDeque<Chunk>,
    /// The best logits each step fetches; `None`: all of them.
    top_k: Option<u32>,
    prompts: Vec<Vec<u32>>,
    /// Each prompt's scored tokens (after its first), when asked.
    scores: Vec<Vec<Scored>>,
}

/// The prompt's media as the wasi:nn contract wants them.
fn step_media(media: Vec<MediaInput>) -> StepMedia {
    let mut out = StepMedia::default();
    for m in media {
        let kind = match m.kind {
            MediaKind::Image => reka_protocol::MediaKind::Image,
            MediaKind::Video => reka_protocol::MediaKind::Video,
            MediaKind::Audio => reka_protocol::MediaKind::Audio,
        };
        out.spans.push(MediaSpan { kind, position: m.position, tokens: m.tokens, items: m.items });
        match kind {
            reka_protocol::MediaKind::Audio => out.mel.extend(m.data),
            _ => out.pixels.extend(m.data),
        }
    }
    out
}

fn invalid(message: impl Into<String>) -> Error {
    Error { kind: ErrorKind::InvalidRequest, message: message.into() }
}

/// A generation, as the WIT resource.
struct Gen(RefCell<State>);

impl Guest for Component {
    type Generation = Gen;

    fn embed(model: String, texts: Vec<String>) -> Result<Embeddings, Error> {
        let e = reka_guest::embed(&model, &texts).map_err(to_error)?;
        Ok(Embeddings { vectors: e.vectors, prompt_tokens: e.tokens })
    }
}

impl GuestGeneration for Gen {
    fn start(
        model: String,
        prompts: Vec<Vec<u32>>,
        media: Vec<MediaInput>,
        stop_token_ids: Vec<u32>,
        stop_strings: Vec<String>,
        sampling: Sampling,
        prompt_logprobs: Option<u32>,
    ) -> Result<Generation, Error> {
        if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
            return Err(invalid("the prompt is empty"));
        }
        let n = sampling.n.max(1) as usize;
        if prompts.len() * n > MAX_ANSWERS {
            return Err(invalid(format!("at most {MAX_ANSWERS} answers (prompts × n) per request")));
        }
        if !media.is_empty() && prompts.len() > 1 {
            return Err(invalid("media go with a single prompt"));
        }
        if sampling.logprobs.or(prompt_logprobs).is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return Err(invalid(format!("at most {MAX_TOP_LOGPROBS} log-probs per token")));
        }
        if sampling.constraint.is_some() && sampling.ignore_eos {
            return Err(invalid("`ignore_eos` cannot be combined with a constrained output: the constraint ends it"));
        }
        let spec = sampling.constraint.as_ref().map(constraint::spec).transpose()?;
        let session = Session::open(&model).map_err(to_error)?;
        let (_info, tok) = session.model().map_err(to_error)?;
        let compiled = match &spec {
            Some(spec) => Some(constraint::compile(&tok, &stop_token_ids, spec)?),
            None => None,
        };
        let stop_ids = if sampling.ignore_eos { Vec::new() } else { stop_token_ids };
        let settings = Settings {
            presence: sampling.presence_penalty,
            frequency: sampling.frequency_penalty,
            repetition: sampling.repetition_penalty,
            bias: sampling.logit_bias.clone(),
            min_tokens: sampling.min_tokens,
            window: sampling.repetition_window,
        };
        let sampler = |index: usize| Sampler::new(sampling.temperature, sampling.top_p, sampling.top_k, sampling.seed.wrapping_add(index as u64));
        // One fetch size for every answer: what the sampler needs, and the
        // reported log-probs.
        let top_k = sampler(0).wants().map(|k| k.max(sampling.logprobs.unwrap_or(0)).max(1));
        let penalties: Vec<Penalties> = prompts.iter().map(|p| Penalties::new(settings.clone(), p, &stop_ids)).collect();
        // The prefill: every prompt at once, one stream each.
        let ids: Vec<u32> = prompts.concat();
        let media = step_media(media);
        let mut first_masks = Vec::new();
        if let Some(c) = &compiled {
            let words = c.clone().mask().map_err(|e| invalid(format!("the constraint allows nothing: {e}")))?.words;
            first_masks = vec![Some(words); prompts.len()];
        }
        let ask = Ask {
            streams: (prompts.len() > 1).then(|| ((0..prompts.len() as u32).collect(), prompts.iter().map(|p| p.len() as u32).collect())),
            top_k,
            adjust: penalties.iter().map(Penalties::adjustments).collect(),
            allowed: first_masks,
            prompt_top: prompt_logprobs,
            media: (!media.spans.is_empty()).then_some(&media),
        };
        let first = session.run(&ids, &ask).map_err(to_error)?;
        let mut scored = first.prompt.into_iter();
        let scores = prompts.iter().map(|p| scored.by_ref().take(p.len() - 1).collect()).collect();
        // The other answers of each prompt start from a copy of its prefill.
        let p_count = prompts.len() as u32;
        if n > 1 {
            for p in 0..p_count {
                session.fork(p, n as u32 - 1).map_err(to_error)?;
            }
        }
        let mut stops = stop_strings;
        stops.extend(sampling.stop.iter().cloned());
        let rules = Rules { stops, constraint: compiled, skip_special: sampling.skip_special_tokens };
        let mut answers = Vec::with_capacity(prompts.len() * n);
        for (p, out) in first.streams.into_iter().enumerate() {
            for j in 0..n {
                let index = p * n + j;
                let stream = if j == 0 { p as u32 } else { p_count + (p * (n - 1) + j - 1) as u32 };
                answers.push(Answer::new(index as u32, stream, sampler(index), rules.clone(), penalties[p].clone(), out.clone()));
            }
        }
        let shared = Shared { tok, stop_ids, max_tokens: sampling.max_tokens, logprobs: sampling.logprobs };
        let state = State { session, shared, answers, queue: VecDeque::new(), top_k, prompts, scores };
        Ok(Generation::new(Gen(RefCell::new(state))))
    }

    fn next(&self) -> Result<Option<Chunk>, Error> {
        self.0.borrow_mut().next()
    }

    fn prompt_logprobs(&self, index: u32) -> Vec<TokenLogprob> {
        self.0.borrow().prompt_logprobs(index as usize)
    }

    fn prompt_text(&self, index: u32) -> String {
        let s = self.0.borrow();
        s.prompts.get(index as usize).map_or_else(String::new, |p| s.shared.tok.decode(p, false))
    }
}

impl State {
    fn next(&mut self) -> Result<Option<Chunk>, Error> {
        if let Some(c) = self.queue.pop_front() {
            return Ok(Some(c));
        }
        // Feed every running answer's last token back, in one step.
        let feed: Vec<usize> = (0..self.answers.len()).filter(|&i| !self.answers[i].done && self.answers[i].last.is_some()).collect();
        if !feed.is_empty() {
            let ids: Vec<u32> = feed.iter().filter_map(|&i| self.answers[i].last.take()).collect();
            let single = self.answers.len() == 1;
            let ask = Ask {
                streams: (!single).then(|| (feed.iter().map(|&i| self.answers[i].stream).collect(), vec![1; feed.len()])),
                top_k: self.top_k,
                adjust: feed.iter().map(|&i| self.answers[i].penalties.adjustments()).collect(),
                allowed: feed.iter().map(|&i| self.answers[i].allowed(&self.shared)).collect(),
                ..Ask::default()
            };
            let out = self.session.run(&ids, &ask).map_err(to_error)?;
            for (&i, o) in feed.iter().zip(out.streams) {
                self.answers[i].next = Some(o);
            }
        }
        let shared = &self.shared;
        let chunks: Vec<Chunk> = self.answers.iter_mut().filter_map(|a| a.step(shared)).collect();
        self.queue.extend(chunks);
        Ok(self.queue.pop_front())
    }

    /// Prompt `p`'s tokens with their scores (the first has none).
    fn prompt_logprobs(&self, p: usize) -> Vec<TokenLogprob> {
        let (Some(ids), Some(scores)) = (self.prompts.get(p), self.scores.get(p)) else {
            return Vec::new();
        };
        let sh = &self.shared;
        let bytes = |id: u32| sh.tok.token_bytes(id).to_vec();
        let mut out = Vec::with_capacity(ids.len());
        out.extend(ids.first().map(|&id| TokenLogprob { token: id, bytes: bytes(id), logprob: None, top: Vec::new() }));
        for (&id, sc) in ids.iter().skip(1).zip(scores) {
            let top = sc.top.iter().map(|&(i, l)| sh.top(i, l)).collect();
            out.push(TokenLogprob { token: id, bytes: bytes(id), logprob: Some(sc.logprob), top });
        }
        out
    }
}

export!(Component);
