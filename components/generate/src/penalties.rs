//! The logit adjustments a request asks for, as the host applies them
//! (`reka_protocol::logprobs::Adjust`, vLLM's order): `logit_bias`, the stop
//! tokens forbidden before `min_tokens`, `repetition_penalty` over the prompt
//! and the answer, then OpenAI's `presence_penalty` and `frequency_penalty`
//! over the answer's own tokens. With a repetition window (Spin's
//! `repeat-penalty-last-n-token-count`) the repetition penalty covers only the
//! last tokens of the prompt and the answer, as Spin's engine applies it.

use reka_protocol::logprobs::Adjust;
use std::collections::{BTreeMap, BTreeSet};

/// The request's adjustment settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub presence: f32,
    pub frequency: f32,
    pub repetition: f32,
    pub bias: Vec<(u32, f32)>,
    pub min_tokens: u32,
    /// Tokens the repetition penalty looks back over; 0: all.
    pub window: u32,
}

/// One answer's adjustments as it grows.
#[derive(Debug, Clone)]
pub struct Penalties {
    settings: Settings,
    /// Distinct prompt tokens (for the repetition penalty).
    prompt: BTreeSet<u32>,
    /// Uses of each token in the answer so far.
    counts: BTreeMap<u32, u32>,
    generated: u32,
    stop_ids: Vec<u32>,
    /// With a window: the prompt and the answer so far, in order.
    history: Vec<u32>,
}

impl Penalties {
    pub fn new(settings: Settings, prompt: &[u32], stop_ids: &[u32]) -> Self {
        let repeat = settings.repetition != 1.0;
        let windowed = repeat && settings.window > 0;
        let history = if windowed { prompt.to_vec() } else { Vec::new() };
        let prompt = if repeat && !windowed { prompt.iter().copied().collect() } else { BTreeSet::new() };
        Self { settings, prompt, counts: BTreeMap::new(), generated: 0, stop_ids: stop_ids.to_vec(), history }
    }

    /// Whether nothing is ever adjusted (no tensor needs to cross).
    pub fn is_none(&self) -> bool {
        let s = &self.settings;
        s.presence == 0.0 && s.frequency == 0.0 && s.repetition == 1.0 && s.bias.is_empty() && s.min_tokens == 0
    }

    /// Records a generated token.
    pub fn push(&mut self, token: u32) {
        *self.counts.entry(token).or_default() += 1;
        self.generated += 1;
        if self.settings.repetition != 1.0 && self.settings.window > 0 {
            self.history.push(token);
        }
    }

    /// The adjustments of the next token's logits.
    pub fn adjustments(&self) -> Vec<Adjust> {
        if self.is_none() {
            return Vec::new();
        }
        let s = &self.settings;
        let mut by_id: BTreeMap<u32, Adjust> = BTreeMap::new();
        fn at(m: &mut BTreeMap<u32, Adjust>, id: u32) -> &mut Adjust {
            m.entry(id).or_insert(Adjust { id, bias: 0.0, repetition: 1.0, penalty: 0.0 })
        }
        for &(id, b) in &s.bias {
            at(&mut by_id, id).bias += b;
        }
        if self.generated < s.min_tokens {
            for &id in &self.stop_ids {
                at(&mut by_id, id).bias = f32::NEG_INFINITY;
            }
        }
        if s.repetition != 1.0 && s.window > 0 {
            let from = self.history.len().saturating_sub(s.window as usize);
            for &id in &self.history[from..] {
                at(&mut by_id, id).repetition = s.repetition;
            }
        } else if s.repetition != 1.0 {
            for &id in self.prompt.iter().chain(self.counts.keys()) {
                at(&mut by_id, id).repetition = s.repetition;
            }
        }
        if s.presence != 0.0 || s.frequency != 0.0 {
            for (&id, &c) in &self.counts {
                at(&mut by_id, id).penalty = s.frequency * c as f32 + s.presence;
            }
        }
        by_id.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(p: &Penalties, logits: &mut [f32]) {
        Adjust::apply(&p.adjustments(), logits);
    }

    #[test]
    fn openai_presence_and_frequency_count_only_the_answer() {
        let s = Settings { presence: 0.5, frequency: 0.25, repetition: 1.0, ..Settings::default() };
        let mut p = Penalties::new(s, &[0, 1], &[]);
        p.push(2);
        p.push(2);
        p.push(3);
        let mut l = vec![1.0; 4];
        apply(&p, &mut l);
        // mu[j] - c[j]·f - (c[j] > 0)·p, prompt tokens untouched.
        assert_eq!(l, vec![1.0, 1.0, 1.0 - 0.5 - 0.5, 1.0 - 0.25 - 0.5]);
    }

    #[test]
    fn repetition_covers_prompt_and_answer_min_tokens_forbids_stops_and_bias_adds() {
        let s = Settings { repetition: 2.0, bias: vec![(3, 1.0)], min_tokens: 1, ..Settings::default() };
        let mut p = Penalties::new(s, &[0], &[4]);
        let mut l = vec![2.0, 2.0, -2.0, 1.0, 5.0];
        apply(&p, &mut l);
        assert_eq!(l, vec![1.0, 2.0, -2.0, 2.0, f32::NEG_INFINITY]);
        p.push(2);
        let mut l = vec![2.0, 2.0, -2.0, 1.0, 5.0];
        apply(&p, &mut l);
        assert_eq!(l, vec![1.0, 2.0, -4.0, 2.0, 5.0]);
        assert!(Penalties::new(Settings { repetition: 1.0, ..Settings::default() }, &[1], &[]).is_none());
    }

    #[test]
    fn a_window_penalises_only_the_last_tokens_of_prompt_and_answer() {
        let s = Settings { repetition: 2.0, window: 2, ..Settings::default() };
        let mut p = Penalties::new(s, &[0, 1, 2], &[]);
        let mut l = vec![2.0; 4];
        apply(&p, &mut l);
        assert_eq!(l, vec![2.0, 1.0, 1.0, 2.0]);
        p.push(3);
        let mut l = vec![2.0; 4];
        apply(&p, &mut l);
        assert_eq!(l, vec![2.0, 2.0, 1.0, 1.0]);
    }
}
