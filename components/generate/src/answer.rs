//! One answer of a generation: its sampler, penalties, incremental detokeniser
//! and stop strings. It samples a token from the distribution its stream's last
//! step returned and turns it into a chunk of text (with the token's log-prob
//! when asked).

use crate::penalties::Penalties;
use crate::reka::inference::types::{Chunk, FinishReason, TokenLogprob, TopLogprob};
use crate::sampler::Sampler;
use crate::stops::StopMatcher;
use reka_constrain::Constraint;
use reka_guest::{Dist, StreamOut};
use reka_tokenizer::{IncrementalDecoder, Tokenizer};

/// What all answers of a generation share.
pub struct Shared {
    pub tok: Tokenizer,
    /// Token ids that end an answer (none with `ignore_eos`).
    pub stop_ids: Vec<u32>,
    pub max_tokens: u32,
    /// Best tokens to report per generated token; `None`: no log-probs.
    pub logprobs: Option<u32>,
}

impl Shared {
    /// A top-list entry for `id`.
    pub fn top(&self, id: u32, logprob: f32) -> TopLogprob {
        TopLogprob { token: id, bytes: self.tok.token_bytes(id).to_vec(), logprob }
    }
}

/// What shapes an answer's text besides sampling.
#[derive(Clone)]
pub struct Rules {
    /// Stop strings.
    pub stops: Vec<String>,
    /// What the output must be, when the request constrains it.
    pub constraint: Option<Constraint>,
    /// Special tokens are left out of the text.
    pub skip_special: bool,
}

pub struct Answer {
    /// The choice index: prompt × n + answer.
    pub index: u32,
    /// The context's stream this answer runs on.
    pub stream: u32,
    sampler: Sampler,
    decoder: IncrementalDecoder,
    stops: StopMatcher,
    pub penalties: Penalties,
    /// What to sample from next.
    pub next: Option<StreamOut>,
    /// The token sampled last, not yet fed back into the model.
    pub last: Option<u32>,
    generated: u32,
    pub done: bool,
    /// What the output must be, when the request constrains it.
    constraint: Option<Constraint>,
}

impl Answer {
    pub fn new(index: u32, stream: u32, sampler: Sampler, rules: Rules, penalties: Penalties, next: StreamOut) -> Self {
        let Rules { stops, constraint, skip_special } = rules;
        Self {
            index,
            stream,
            sampler,
            decoder: IncrementalDecoder::new(skip_special),
            stops: StopMatcher::new(stops),
            penalties,
            next: Some(next),
            last: None,
            generated: 0,
            done: false,
            constraint,
        }
    }

    fn finish(&mut self, reason: FinishReason, mut text: String, logprobs: Vec<TokenLogprob>) -> Chunk {
        self.done = true;
        if reason == FinishReason::Length {
            text.push_str(&self.decoder.finish());
            text.push_str(&self.stops.push("").text);
            text.push_str(&self.stops.flush());
        }
        Chunk { index: self.index, text, completion_tokens: self.generated, finish: Some(reason), logprobs }
    }

    /// Samples the next token and returns its chunk; `None` when there is
    /// nothing to sample from.
    pub fn step(&mut self, sh: &Shared) -> Option<Chunk> {
        if self.done {
            return None;
        }
        if sh.max_tokens == 0 {
            return Some(self.finish(FinishReason::Length, String::new(), Vec::new()));
        }
        let next = self.next.take()?;
        let (token, logprobs) = self.sample(sh, next);
        self.generated += 1;
        self.penalties.push(token);
        if sh.stop_ids.contains(&token) {
            let mut rest = self.decoder.finish();
            let e = self.stops.push(&rest);
            rest = e.text;
            if !e.stopped {
                rest.push_str(&self.stops.flush());
            }
            return Some(self.finish(FinishReason::Stop, rest, logprobs));
        }
        // A token the constraint cannot take (it allows none but the stop
        // tokens once complete) ends the answer.
        let complete = match self.constraint.as_mut().map(|c| c.accept(token).map(|()| c.finished())) {
            Some(Ok(done)) => done,
            Some(Err(_)) => {
                let rest = self.decoder.finish();
                return Some(self.finish(FinishReason::Stop, rest, logprobs));
            }
            None => false,
        };
        let piece = self.decoder.push(&sh.tok, token);
        let mut e = self.stops.push(&piece);
        if complete && !e.stopped {
            e.text.push_str(&self.decoder.finish());
            e.text.push_str(&self.stops.flush());
            e.stopped = true;
        }
        if e.stopped {
            return Some(self.finish(FinishReason::Stop, e.text, logprobs));
        }
        if self.generated >= sh.max_tokens {
            return Some(self.finish(FinishReason::Length, e.text, logprobs));
        }
        self.last = Some(token);
        Some(Chunk { index: self.index, text: e.text, completion_tokens: self.generated, finish: None, logprobs })
    }

    /// The tokens the constraint allows next (`None`: unconstrained). A
    /// constraint that fails allows only the stop tokens.
    pub fn allowed(&mut self, sh: &Shared) -> Option<Vec<u32>> {
        let c = self.constraint.as_mut()?;
        Some(c.mask().map(|m| m.words).unwrap_or_else(|_| {
            let mut w = vec![0u32; sh.tok.vocab_size().div_ceil(32)];
            for &s in &sh.stop_ids {
                if let Some(x) = w.get_mut(s as usize / 32) {
                    *x |= 1 << (s % 32);
                }
            }
            w
        }))
    }

    /// The sampled token and, when asked, its log-prob entry.
    fn sample(&mut self, sh: &Shared, next: StreamOut) -> (u32, Vec<TokenLogprob>) {
        let lse = next.lse;
        match next.dist {
            Dist::Top(cand) => {
                let token = self.sampler.sample_candidates(cand.clone());
                let entry = sh.logprobs.map(|n| {
                    let logprob = cand.iter().find(|c| c.0 == token).map_or(f32::NEG_INFINITY, |c| c.1 - lse);
                    let top = cand.iter().take(n as usize).map(|&(i, l)| sh.top(i, l - lse)).collect();
                    entry(sh, token, logprob, top)
                });
                (token, entry.into_iter().collect())
            }
            Dist::Logits(l) => {
                let token = self.sampler.sample(&l);
                let entry = sh.logprobs.map(|n| {
                    let logprob = l.get(token as usize).map_or(f32::NEG_INFINITY, |x| x - lse);
                    let top = reka_protocol::top_k(&l, n as usize).into_iter().map(|(i, x)| sh.top(i, x - lse)).collect();
                    entry(sh, token, logprob, top)
                });
                (token, entry.into_iter().collect())
            }
        }
    }
}

fn entry(sh: &Shared, token: u32, logprob: f32, top: Vec<TopLogprob>) -> TokenLogprob {
    TokenLogprob { token, bytes: sh.tok.token_bytes(token).to_vec(), logprob: Some(logprob), top }
}
