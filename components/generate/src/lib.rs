//! The generate component: the decode loop. Each `next` runs one forward step
//! through wasi:nn, samples a token, detokenises it incrementally, applies stop
//! tokens, stop strings and the token budget, and hands back the new text, so the
//! gateway can stream it as it is made.

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

use exports::reka::inference::generate::{Generation, Guest, GuestGeneration};
use reka::inference::types::{Chunk, Error, ErrorKind, FinishReason, MediaInput, MediaKind, Sampling};
use reka_guest::{Session, StepMedia};
use reka_protocol::MediaSpan;
use reka_tokenizer::{IncrementalDecoder, Tokenizer};
use sampler::Sampler;
use std::cell::RefCell;
use stops::StopMatcher;

struct Component;

reka_guest::failure_to_wit_error!(Error, ErrorKind);

/// The loop's state between `next` calls.
struct State {
    session: Session,
    tok: Tokenizer,
    sampler: Sampler,
    decoder: IncrementalDecoder,
    stops: StopMatcher,
    stop_ids: Vec<u32>,
    /// What to sample from next (after the prefill, or the last step).
    next: Next,
    /// The token sampled last, not yet fed back into the model.
    last: Option<u32>,
    generated: u32,
    max_tokens: u32,
    done: bool,
}

/// What the last step returned to sample from.
enum Next {
    /// Every logit (the sampler needs them all).
    Logits(Vec<f32>),
    /// Only the best few, picked by the host.
    Top(Vec<(u32, f32)>),
    /// Already sampled.
    Used,
}

impl Next {
    /// Runs `ids` and fetches no more logits than the sampler needs.
    fn step(session: &Session, sampler: &Sampler, ids: &[u32], media: &StepMedia) -> Result<Next, reka_guest::Failure> {
        Ok(match sampler.wants() {
            Some(k) => Next::Top(session.step_top(ids, k, media)?),
            None => Next::Logits(session.step(ids, media)?),
        })
    }
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

/// A generation session, as the WIT resource.
struct Gen(RefCell<State>);

impl Guest for Component {
    type Generation = Gen;
}

impl GuestGeneration for Gen {
    fn start(
        model: String,
        prompt: Vec<u32>,
        media: Vec<MediaInput>,
        stop_token_ids: Vec<u32>,
        stop_strings: Vec<String>,
        sampling: Sampling,
    ) -> Result<Generation, Error> {
        if prompt.is_empty() {
            return Err(Error {
                kind: ErrorKind::InvalidRequest,
                message: "the prompt is empty".into(),
            });
        }
        let session = Session::open(&model).map_err(to_error)?;
        let (_info, tok) = session.model().map_err(to_error)?;
        let sampler = Sampler::new(sampling.temperature, sampling.top_p, sampling.top_k, sampling.seed);
        let next = Next::step(&session, &sampler, &prompt, &step_media(media)).map_err(to_error)?;
        let mut stops = stop_strings;
        stops.extend(sampling.stop.iter().cloned());
        let state = State {
            session,
            tok,
            sampler,
            decoder: IncrementalDecoder::new(true),
            stops: StopMatcher::new(stops),
            stop_ids: stop_token_ids,
            next,
            last: None,
            generated: 0,
            max_tokens: sampling.max_tokens,
            done: false,
        };
        Ok(Generation::new(Gen(RefCell::new(state))))
    }

    fn next(&self) -> Result<Option<Chunk>, Error> {
        self.0.borrow_mut().next()
    }
}

impl State {
    fn finish(&mut self, reason: FinishReason, mut text: String) -> Option<Chunk> {
        self.done = true;
        if reason == FinishReason::Length {
            text.push_str(&self.decoder.finish());
            text.push_str(&self.stops.push("").text);
            text.push_str(&self.stops.flush());
        }
        Some(Chunk {
            text,
            completion_tokens: self.generated,
            finish: Some(reason),
        })
    }

    fn next(&mut self) -> Result<Option<Chunk>, Error> {
        if self.done {
            return Ok(None);
        }
        if self.max_tokens == 0 {
            return Ok(self.finish(FinishReason::Length, String::new()));
        }
        if let Some(t) = self.last.take() {
            self.next = Next::step(&self.session, &self.sampler, &[t], &StepMedia::default()).map_err(to_error)?;
        }
        let token = match std::mem::replace(&mut self.next, Next::Used) {
            Next::Logits(l) => self.sampler.sample(&l),
            Next::Top(c) => self.sampler.sample_candidates(c),
            Next::Used => return Err(Error { kind: ErrorKind::Internal, message: "no logits to sample from".into() }),
        };
        self.generated += 1;
        if self.stop_ids.contains(&token) {
            let mut rest = self.decoder.finish();
            let e = self.stops.push(&rest);
            rest = e.text;
            if !e.stopped {
                rest.push_str(&self.stops.flush());
            }
            return Ok(self.finish(FinishReason::Stop, rest));
        }
        let piece = self.decoder.push(&self.tok, token);
        let e = self.stops.push(&piece);
        if e.stopped {
            return Ok(self.finish(FinishReason::Stop, e.text));
        }
        if self.generated >= self.max_tokens {
            return Ok(self.finish(FinishReason::Length, e.text));
        }
        self.last = Some(token);
        Ok(Some(Chunk {
            text: e.text,
            completion_tokens: self.generated,
            finish: None,
        }))
    }
}

export!(Component);
