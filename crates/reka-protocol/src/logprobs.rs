//! Log-probabilities, logit adjustments and parallel streams in the wasi:nn
//! contract: the tensors a guest sends to ask for them and the math both sides
//! share (applied by the host, so the vocabulary's logits never cross into the
//! guest).
//!
//! | input               | type, shape  | meaning                                                      |
//! |---------------------|--------------|--------------------------------------------------------------|
//! | [`PROMPT_LOGPROBS`] | i32 `[1]`    | with [`INPUT_IDS`](crate::INPUT_IDS): also score every appended id after the first, with the `N` best of its position |
//! | [`ADJUST_IDS`]      | i32 `[m]`    | logit adjustments of the last position (penalties, bias)      |
//! | [`ADJUST`]          | f32 `[m, 3]` | per id: `(bias, repetition factor, penalty)`, see [`Adjust`]   |
//! | [`ADJUST_COUNTS`]   | i32 `[s]`    | with [`STREAMS`]: how many adjustment rows each stream takes  |
//! | [`STREAMS`]         | i32 `[s]`    | which streams of the context the ids go to (a new index opens a stream) |
//! | [`STREAM_LENS`]     | i32 `[s]`    | with [`STREAMS`]: ids of [`INPUT_IDS`] per stream (default 1 each) |
//! | [`FORK`]            | i32 `[2]`    | `(stream, c)`: `c` new streams with a copy of `stream`'s KV cache |
//! | [`ALLOWED`]         | i32 `[r, w]` | allowed-token bitmasks (bit `i % 32` of word `i / 32` for id `i`); every other logit of the stream becomes `-inf` after the adjustments, before top-k and log-sum-exp (constrained decoding) |
//! | [`ALLOWED_ROWS`]    | i32 `[s]`    | with [`ALLOWED`]: each stream's mask row, `-1` for none (default: row 0 for the one stream) |
//!
//! Outputs, stream after stream in [`STREAMS`] order: [`LOGITS`](crate::LOGITS)
//! `[s, vocab]` or [`TOP_IDS`](crate::TOP_IDS) / [`TOP_LOGITS`](crate::TOP_LOGITS)
//! `[s, k]` (adjusted), [`LOGSUMEXP`] `[s]`; with [`PROMPT_LOGPROBS`],
//! [`PROMPT_TOKEN_LOGPROBS`] `[r]`, [`PROMPT_TOP_IDS`] and [`PROMPT_TOP_LOGPROBS`]
//! `[r, N]` for the `r = Σ (len − 1)` scored ids. Prompt log-probs are the
//! model's own (no adjustment); everything is f32.

/// Input: `N` (0–20) for prompt log-probs.
pub const PROMPT_LOGPROBS: &str = "prompt_logprobs";
/// Output: log p(id | ids before it) for each appended id after a step's first.
pub const PROMPT_TOKEN_LOGPROBS: &str = "prompt_token_logprobs";
/// Output: the `N` best ids of each scored position, best first.
pub const PROMPT_TOP_IDS: &str = "prompt_top_ids";
/// Output: their log-probs.
pub const PROMPT_TOP_LOGPROBS: &str = "prompt_top_logprobs";
/// Input: ids whose last-position logit is adjusted.
pub const ADJUST_IDS: &str = "adjust_ids";
/// Input: `(bias, repetition factor, penalty)` per [`ADJUST_IDS`] entry.
pub const ADJUST: &str = "adjust";
/// Input: adjustment rows per stream.
pub const ADJUST_COUNTS: &str = "adjust_counts";
/// Input: the streams a step goes to.
pub const STREAMS: &str = "streams";
/// Input: ids per stream.
pub const STREAM_LENS: &str = "stream_lens";
/// Input: copy a stream's KV cache into new streams.
pub const FORK: &str = "fork";
/// Input: allowed-token bitmasks, one row per constrained stream.
pub const ALLOWED: &str = "allowed";
/// Input: which [`ALLOWED`] row each stream takes (`-1`: unconstrained).
pub const ALLOWED_ROWS: &str = "allowed_rows";
/// Output: log Σ exp(adjusted logits) of each stream's last position.
pub const LOGSUMEXP: &str = "logsumexp";

/// Most log-probs per position a request may ask for (OpenAI's and vLLM's 20).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// One adjustment of a logit, in vLLM's order: `bias` is added (`logit_bias`,
/// `-inf` to forbid), then the repetition factor (`repetition_penalty`: a
/// positive logit is divided by it, a negative one multiplied; 1 leaves it),
/// then `penalty` is subtracted (presence and frequency penalties).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjust {
    pub id: u32,
    pub bias: f32,
    pub repetition: f32,
    pub penalty: f32,
}

impl Adjust {
    /// Applies `adj` to `logits`; ids past the vocabulary are ignored.
    pub fn apply(adj: &[Adjust], logits: &mut [f32]) {
        for a in adj {
            if let Some(l) = logits.get_mut(a.id as usize) {
                *l += a.bias;
                if a.repetition != 1.0 && a.repetition > 0.0 {
                    *l = if *l > 0.0 { *l / a.repetition } else { *l * a.repetition };
                }
                *l -= a.penalty;
            }
        }
    }
}

/// Sets every logit whose id has no bit in `words` (ids past them included)
/// to `-inf`.
pub fn apply_allowed(words: &[u32], logits: &mut [f32]) {
    for (i, l) in logits.iter_mut().enumerate() {
        if words.get(i / 32).is_none_or(|w| w >> (i % 32) & 1 == 0) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// log Σ exp(logits), the sum in f64 around the maximum; `-inf` when every
/// logit is `-inf`.
pub fn logsumexp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    max + sum.ln() as f32
}

/// One scored position: the log-prob of the id that came next, and the `n`
/// best `(id, log-prob)`, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// Scores `next` under `logits` with the `n` best ids.
pub fn score(logits: &[f32], next: u32, n: usize) -> Scored {
    let lse = logsumexp(logits);
    let logprob = logits.get(next as usize).map_or(f32::NEG_INFINITY, |l| l - lse);
    let top = crate::top_k(logits, n).into_iter().map(|(i, l)| (i, l - lse)).collect();
    Scored { logprob, top }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments_follow_vllm_order_and_signs() {
        let mut l = vec![2.0, -2.0, 1.0, 0.5];
        Adjust::apply(
            &[
                Adjust { id: 0, bias: 0.0, repetition: 2.0, penalty: 0.0 },
                Adjust { id: 1, bias: 0.0, repetition: 2.0, penalty: 0.5 },
                Adjust { id: 2, bias: f32::NEG_INFINITY, repetition: 1.0, penalty: 0.0 },
                Adjust { id: 3, bias: 1.5, repetition: 2.0, penalty: 0.0 },
                Adjust { id: 9, bias: 1.0, repetition: 1.0, penalty: 0.0 },
            ],
            &mut l,
        );
        assert_eq!(l, vec![1.0, -4.5, f32::NEG_INFINITY, 1.0]);
    }

    #[test]
    fn scores_are_log_softmax() {
        let l = [1.0f32, 2.0, 3.0];
        let s = score(&l, 0, 2);
        let z: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        assert!((s.logprob as f64 - (1.0 - z.ln())).abs() < 1e-6);
        assert_eq!(s.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 1]);
        let total: f64 = l.iter().map(|&x| ((x - logsumexp(&l)) as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(logsumexp(&[f32::NEG_INFINITY; 2]), f32::NEG_INFINITY);
    }
}
