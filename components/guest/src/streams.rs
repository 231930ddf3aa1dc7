//! A session's general step (`reka_protocol::logprobs`): ids for several
//! streams at once, logit adjustments, the best few logits with their
//! log-sum-exp, prompt log-probs, and forking a stream's KV cache.

use crate::wasi::nn::tensor::{Tensor, TensorType};
use crate::{f32s, ids_tensor, Failure, Session, StepMedia};
use reka_protocol::logprobs::{self as lp, Adjust, Scored};
use reka_protocol::{INPUT_IDS, LOGITS, TOP_IDS, TOP_K, TOP_LOGITS};

/// What a step asks for besides its ids.
#[derive(Default)]
pub struct Ask<'a> {
    /// The streams the ids go to, and how many ids each; `None`: all to stream 0.
    pub streams: Option<(Vec<u32>, Vec<u32>)>,
    /// Only the `k` best (adjusted) logits of each stream.
    pub top_k: Option<u32>,
    /// Each stream's adjustments, in stream order.
    pub adjust: Vec<Vec<Adjust>>,
    /// Each stream's allowed-token bitmask (constrained decoding), in stream
    /// order; empty or all `None`: no constraint.
    pub allowed: Vec<Option<Vec<u32>>>,
    /// Score the appended ids with this many best per position.
    pub prompt_top: Option<u32>,
    pub media: Option<&'a StepMedia>,
}

/// The next-token distribution of a stream.
#[derive(Debug, Clone)]
pub enum Dist {
    /// Every (adjusted) logit.
    Logits(Vec<f32>),
    /// The best few `(id, logit)`, best first.
    Top(Vec<(u32, f32)>),
}

/// One stream's answer to a step.
#[derive(Debug, Clone)]
pub struct StreamOut {
    pub dist: Dist,
    /// log Σ exp of the adjusted logits: `logit − lse` is a log-prob.
    pub lse: f32,
}

/// A step's answer: each stream's distribution, and the scored ids.
#[derive(Debug, Clone, Default)]
pub struct Stepped {
    pub streams: Vec<StreamOut>,
    pub prompt: Vec<Scored>,
}

fn i32_tensor(v: impl IntoIterator<Item = i32>) -> Tensor {
    let v: Vec<i32> = v.into_iter().collect();
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Tensor::new(&[v.len() as u32], TensorType::I32, &bytes)
}

fn i32s(data: &[u8]) -> Vec<i32> {
    data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Session {
    /// Runs `ids` as `ask` says.
    pub fn run(&self, ids: &[u32], ask: &Ask<'_>) -> Result<Stepped, Failure> {
        let mut inputs = vec![(INPUT_IDS.to_string(), ids_tensor(ids))];
        let n_streams = match &ask.streams {
            Some((s, lens)) => {
                inputs.push((lp::STREAMS.to_string(), i32_tensor(s.iter().map(|&x| x as i32))));
                inputs.push((lp::STREAM_LENS.to_string(), i32_tensor(lens.iter().map(|&x| x as i32))));
                s.len()
            }
            None => 1,
        };
        if let Some(k) = ask.top_k {
            inputs.push((TOP_K.to_string(), i32_tensor([k as i32])));
        }
        if let Some(n) = ask.prompt_top {
            inputs.push((lp::PROMPT_LOGPROBS.to_string(), i32_tensor([n as i32])));
        }
        if ask.adjust.iter().any(|a| !a.is_empty()) {
            let all: Vec<&Adjust> = ask.adjust.iter().flatten().collect();
            inputs.push((lp::ADJUST_IDS.to_string(), i32_tensor(all.iter().map(|a| a.id as i32))));
            let rows: Vec<u8> = all.iter().flat_map(|a| [a.bias, a.repetition, a.penalty]).flat_map(f32::to_le_bytes).collect();
            inputs.push((lp::ADJUST.to_string(), Tensor::new(&[all.len() as u32, 3], TensorType::Fp32, &rows)));
            inputs.push((lp::ADJUST_COUNTS.to_string(), i32_tensor(ask.adjust.iter().map(|a| a.len() as i32))));
        }
        if let Some(words) = ask.allowed.iter().flatten().next().map(Vec::len) {
            let mut rows = Vec::with_capacity(ask.allowed.len());
            let mut data = Vec::new();
            let mut r = 0;
            for a in &ask.allowed {
                match a {
                    Some(m) if m.len() == words => {
                        data.extend(m.iter().flat_map(|w| w.to_le_bytes()));
                        rows.push(r);
                        r += 1;
                    }
                    Some(_) => return Err(Failure::Internal("allowed-token masks of different sizes".into())),
                    None => rows.push(-1),
                }
            }
            inputs.push((lp::ALLOWED.to_string(), Tensor::new(&[r as u32, words as u32], TensorType::I32, &data)));
            inputs.push((lp::ALLOWED_ROWS.to_string(), i32_tensor(rows)));
        }
        if let Some(m) = ask.media {
            m.push_tensors(&mut inputs);
        }
        let out = self.compute_all(inputs)?;
        let get = |name: &str| out.iter().find(|(n, _)| n == name).map(|(_, t)| t.data());
        let missing = |n: &str| Failure::Internal(format!("the backend returned no {n} tensor"));
        let lse = f32s(&get(lp::LOGSUMEXP).ok_or_else(|| missing(lp::LOGSUMEXP))?);
        let dists: Vec<Dist> = match ask.top_k {
            Some(_) => {
                let ids = i32s(&get(TOP_IDS).ok_or_else(|| missing(TOP_IDS))?);
                let logits = f32s(&get(TOP_LOGITS).ok_or_else(|| missing(TOP_LOGITS))?);
                let k = ids.len() / n_streams.max(1);
                ids.chunks(k.max(1))
                    .zip(logits.chunks(k.max(1)))
                    .map(|(i, l)| Dist::Top(i.iter().map(|&x| x as u32).zip(l.iter().copied()).collect()))
                    .collect()
            }
            None => {
                let logits = f32s(&get(LOGITS).ok_or_else(|| missing(LOGITS))?);
                let v = logits.len() / n_streams.max(1);
                logits.chunks(v.max(1)).map(|c| Dist::Logits(c.to_vec())).collect()
            }
        };
        if dists.len() != n_streams || lse.len() != n_streams {
            return Err(Failure::Internal(format!("the backend answered {} streams of {n_streams}", dists.len())));
        }
        let streams = dists.into_iter().zip(lse).map(|(dist, lse)| StreamOut { dist, lse }).collect();
        let mut prompt = Vec::new();
        if let Some(n) = ask.prompt_top {
            let lps = f32s(&get(lp::PROMPT_TOKEN_LOGPROBS).ok_or_else(|| missing(lp::PROMPT_TOKEN_LOGPROBS))?);
            let ids = i32s(&get(lp::PROMPT_TOP_IDS).ok_or_else(|| missing(lp::PROMPT_TOP_IDS))?);
            let tops = f32s(&get(lp::PROMPT_TOP_LOGPROBS).ok_or_else(|| missing(lp::PROMPT_TOP_LOGPROBS))?);
            let n = n as usize;
            for (r, &logprob) in lps.iter().enumerate() {
                let top = (r * n..(r + 1) * n)
                    .filter_map(|i| Some((*ids.get(i)? as u32, *tops.get(i)?)))
                    .collect();
                prompt.push(Scored { logprob, top });
            }
        }
        Ok(Stepped { streams, prompt })
    }

    /// `copies` new streams holding a copy of stream `stream`'s KV cache
    /// (numbered after the existing ones).
    pub fn fork(&self, stream: u32, copies: u32) -> Result<(), Failure> {
        self.compute_all(vec![(lp::FORK.to_string(), i32_tensor([stream as i32, copies as i32]))]).map(|_| ())
    }
}
