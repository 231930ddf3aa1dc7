//! One request's generation behind a wasi:nn execution context.
//!
//! A context holds one or more *streams*, each a session of the model's
//! [`Scheduler`] with its own KV cache: a completions request with several
//! prompts, or `n` answers forked from one prefill. `compute` with `input_ids`
//! appends tokens to streams (all of a call's streams are queued at once, so the
//! engine batches them) and returns each stream's last-position logits, or only
//! the best few, after the logit adjustments asked for, and on request the
//! prompt's log-probs; `compute` with `metadata` returns the model info JSON.
//! The tensors are those of `reka-protocol` and its `logprobs` module. Errors
//! carry an [`ErrorTag`] prefix so that guests can map them.

use super::scheduler::{Embeds, Scheduler, StepError, StepOut, StepRequest};
use super::tensors::{self, bad, err, f32_rows, f32_tensor, id_rows};
use crate::model::LoadedModel;
use reka_protocol::logprobs::{self as lp, Adjust};
use reka_protocol::{ErrorTag, MediaSpan, INPUT_IDS, LOGITS, MEDIA, MEL, METADATA, PIXELS, TOKENIZER, TOP_IDS, TOP_K, TOP_LOGITS};
use std::sync::Arc;
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, Id, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// Most streams one context may hold (prompts × `n`).
const MAX_STREAMS: usize = 256;

/// A context: the shared model plus its streams' places in the engine.
pub struct Session {
    model: Arc<LoadedModel>,
    engine: Arc<Scheduler>,
    /// Each stream's engine session and the positions it holds.
    streams: Vec<(u64, usize)>,
    outputs: Vec<NamedTensor>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for &(seq, _) in &self.streams {
            self.engine.free(seq);
        }
    }
}

/// What one `compute` call asks for besides its ids.
#[derive(Default)]
struct Asks {
    top_k: Option<usize>,
    prompt_top: Option<usize>,
    adjust: Vec<Adjust>,
    adjust_counts: Option<Vec<usize>>,
    streams: Option<Vec<usize>>,
    stream_lens: Option<Vec<usize>>,
    /// Allowed-token masks: the rows' words, and each stream's row.
    allowed: Option<(Vec<u32>, usize, Vec<i32>)>,
}

impl Asks {
    fn read(inputs: &[NamedTensor]) -> Result<Self, BackendError> {
        let find = |name: &str| inputs.iter().find(|i| i.name == name).map(|i| &i.tensor);
        let mut a = Asks {
            top_k: find(TOP_K).map(|t| tensors::count(TOP_K, t, i32::MAX as usize)).transpose()?,
            prompt_top: find(lp::PROMPT_LOGPROBS)
                .map(|t| tensors::count(lp::PROMPT_LOGPROBS, t, lp::MAX_TOP_LOGPROBS as usize))
                .transpose()?,
            adjust_counts: find(lp::ADJUST_COUNTS).map(|t| tensors::indices(lp::ADJUST_COUNTS, t)).transpose()?,
            streams: find(lp::STREAMS).map(|t| tensors::indices(lp::STREAMS, t)).transpose()?,
            stream_lens: find(lp::STREAM_LENS).map(|t| tensors::indices(lp::STREAM_LENS, t)).transpose()?,
            ..Asks::default()
        };
        if a.top_k == Some(0) {
            return Err(bad("top_k must be positive, got 0"));
        }
        match (find(lp::ADJUST_IDS), find(lp::ADJUST)) {
            (Some(ids), Some(rows)) => a.adjust = tensors::adjustments(ids, rows)?,
            (None, None) => {}
            _ => return Err(bad(format!("{} and {} go together", lp::ADJUST_IDS, lp::ADJUST))),
        }
        if let Some(t) = find(lp::ALLOWED) {
            let words: Vec<u32> = tensors::i32s(lp::ALLOWED, t)?.into_iter().map(|w| w as u32).collect();
            let w = match t.dimensions[..] {
                [r, w] if r as usize * w as usize == words.len() && w > 0 => w as usize,
                _ => return Err(bad(format!("{} must be [rows, words] i32", lp::ALLOWED))),
            };
            let rows = match find(lp::ALLOWED_ROWS) {
                Some(r) => tensors::i32s(lp::ALLOWED_ROWS, r)?,
                None => vec![0],
            };
            let n = (words.len() / w) as i32;
            if rows.iter().any(|&r| r < -1 || r >= n) {
                return Err(bad(format!("{} must name rows of {} (or -1)", lp::ALLOWED_ROWS, lp::ALLOWED)));
            }
            a.allowed = Some((words, w, rows));
        }
        Ok(a)
    }

    /// Stream `i`'s allowed-token words, if it is constrained.
    fn allowed_of(&self, i: usize) -> Option<&[u32]> {
        let (words, w, rows) = self.allowed.as_ref()?;
        let r = usize::try_from(*rows.get(i)?).ok()?;
        words.get(r * w..(r + 1) * w)
    }

    /// Each step's adjustments, by [`lp::ADJUST_COUNTS`] (all to the one
    /// stream without it).
    fn adjust_per_stream(&self, streams: usize) -> Result<Vec<&[Adjust]>, BackendError> {
        match &self.adjust_counts {
            None if self.adjust.is_empty() => Ok(vec![&[][..]; streams]),
            None if streams == 1 => Ok(vec![self.adjust.as_slice()]),
            None => Err(bad(format!("{} is needed with adjustments for several streams", lp::ADJUST_COUNTS))),
            Some(c) if c.len() == streams && c.iter().sum::<usize>() == self.adjust.len() => {
                let mut at = 0;
                Ok(c.iter()
                    .map(|&n| {
                        at += n;
                        &self.adjust[at - n..at]
                    })
                    .collect())
            }
            Some(_) => Err(bad(format!("{} must give each stream's share of the adjustments", lp::ADJUST_COUNTS))),
        }
    }
}

impl Session {
    pub fn new(model: Arc<LoadedModel>, engine: Arc<Scheduler>) -> Self {
        let first = engine.open();
        Self { model, engine, streams: vec![(first, 0)], outputs: Vec::new() }
    }

    /// The embeddings of a step's media placeholders, from its media tensors.
    fn media(&self, inputs: &[NamedTensor], n_ids: usize) -> Result<Embeds, BackendError> {
        let find = |name: &str| inputs.iter().find(|i| i.name == name).map(|i| &i.tensor);
        let Some(spans) = find(MEDIA) else {
            return Ok(Vec::new());
        };
        let towers = self.model.media.as_ref().ok_or_else(|| bad(format!("the model `{}` reads no media", self.model.info.name)))?;
        let spans = MediaSpan::from_rows(&tensors::i32s(MEDIA, spans)?).map_err(bad)?;
        let floats = |name: &str| find(name).map_or(Ok(Vec::new()), |t| tensors::f32s(name, t));
        let (pixels, mel) = (floats(PIXELS)?, floats(MEL)?);
        towers.embed(&spans, &pixels, &mel, n_ids).map_err(bad)
    }

    /// `c` new streams holding a copy of stream `from`'s KV cache.
    fn fork(&mut self, t: &Tensor) -> Result<(), BackendError> {
        let [from, c] = tensors::indices(lp::FORK, t)?[..] else {
            return Err(bad(format!("{} must be two i32: (stream, copies)", lp::FORK)));
        };
        let &(seq, len) = self.streams.get(from).ok_or_else(|| bad(format!("{} names stream {from}, which does not exist", lp::FORK)))?;
        if self.streams.len() + c > MAX_STREAMS {
            return Err(bad(format!("a context holds at most {MAX_STREAMS} streams")));
        }
        let new: Vec<u64> = (0..c).map(|_| self.engine.open()).collect();
        let forked = blocking(|| self.engine.fork(seq, new.clone()));
        if let Err(e) = forked {
            new.iter().for_each(|&s| self.engine.free(s));
            return Err(step_error(e));
        }
        self.streams.extend(new.into_iter().map(|s| (s, len)));
        Ok(())
    }

    /// Appends ids to the streams of the call and writes the outputs.
    fn step(&mut self, ids: &Tensor, asks: &Asks, media: &[NamedTensor], out: &mut Vec<NamedTensor>) -> Result<(), BackendError> {
        let vocab = self.model.info.vocab_size;
        let ids: Vec<u32> = tensors::i32s(INPUT_IDS, ids)?.into_iter().map(|i| i as u32).collect();
        if ids.is_empty() || ids.iter().any(|&i| i >= vocab) {
            return Err(bad(format!("input_ids must be 1 or more ids below {vocab}")));
        }
        let streams = asks.streams.clone().unwrap_or_else(|| vec![0]);
        let lens = match (&asks.streams, &asks.stream_lens) {
            (None, _) => vec![ids.len()],
            (Some(s), None) => vec![1; s.len()],
            (Some(_), Some(l)) => l.clone(),
        };
        if lens.len() != streams.len() || lens.iter().sum::<usize>() != ids.len() || lens.contains(&0) {
            return Err(bad(format!("{} must give each stream's ids (1 or more), {} in all", lp::STREAM_LENS, ids.len())));
        }
        self.open_streams(&streams)?;
        if asks.allowed.as_ref().is_some_and(|a| a.2.len() != streams.len()) {
            return Err(bad(format!("{} must give a row for each of the {} streams", lp::ALLOWED_ROWS, streams.len())));
        }
        let adjust = asks.adjust_per_stream(streams.len())?;
        if !media.is_empty() && streams.len() != 1 {
            return Err(bad("media go with a step of one stream"));
        }
        let ctx = self.model.info.context_length as usize;
        let mut reqs = Vec::with_capacity(streams.len());
        let mut at = 0;
        for (&s, &n) in streams.iter().zip(&lens) {
            let len = self.streams[s].1;
            if len + n > ctx {
                return Err(err(ErrorTag::ContextFull, format!("{len} + {n} tokens exceed the context of {ctx}")));
            }
            // The media encoders run here, on the request's thread, before its
            // engine step: other streams keep decoding meanwhile.
            let embeds = if media.is_empty() { Vec::new() } else { blocking(|| self.media(media, n))? };
            reqs.push(StepRequest { seq: self.streams[s].0, ids: ids[at..at + n].to_vec(), embeds, prompt_top: asks.prompt_top });
            at += n;
        }
        // The engine steps may wait for other sessions' rows.
        let results = blocking(|| self.engine.step_many(reqs));
        let mut done = Vec::with_capacity(results.len());
        let mut first_err = None;
        for ((&s, &n), r) in streams.iter().zip(&lens).zip(results) {
            match r {
                Ok(o) => {
                    self.streams[s].1 += n;
                    done.push(o);
                }
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        if let Some(e) = first_err {
            return Err(step_error(e));
        }
        write_outputs(done, &adjust, asks, out);
        Ok(())
    }

    /// Opens the streams a step names for the first time (the next indices).
    fn open_streams(&mut self, streams: &[usize]) -> Result<(), BackendError> {
        let mut seen = std::collections::HashSet::new();
        for &s in streams {
            if !seen.insert(s) {
                return Err(bad(format!("stream {s} appears twice in {}", lp::STREAMS)));
            }
            if s == self.streams.len() && s < MAX_STREAMS {
                let seq = self.engine.open();
                self.streams.push((seq, 0));
            } else if s > self.streams.len() {
                return Err(bad(format!("stream {s} does not exist; the next new stream is {}", self.streams.len())));
            }
        }
        Ok(())
    }
}

/// The outputs of a step's streams, in order: adjusted logits or the best few
/// with each stream's log-sum-exp, and the prompt log-probs when asked.
fn write_outputs(done: Vec<StepOut>, adjust: &[&[Adjust]], asks: &Asks, out: &mut Vec<NamedTensor>) {
    let s = done.len();
    let (mut lse, mut logits, mut top_ids, mut top_logits) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut p_lp, mut p_ids, mut p_top) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (mut o, adj)) in done.into_iter().zip(adjust).enumerate() {
        Adjust::apply(adj, &mut o.logits);
        if let Some(words) = asks.allowed_of(i) {
            lp::apply_allowed(words, &mut o.logits);
        }
        lse.push(reka_kernels::logsumexp_fast(&o.logits).unwrap_or_else(|| lp::logsumexp(&o.logits)));
        match asks.top_k {
            // Only the k best cross into the guest, not the vocabulary.
            Some(k) => {
                for (i, l) in reka_protocol::top_k(&o.logits, k) {
                    top_ids.push(i);
                    top_logits.push(l);
                }
            }
            None => logits.extend_from_slice(&o.logits),
        }
        for sc in o.scored {
            p_lp.push(sc.logprob);
            for (i, l) in sc.top {
                p_ids.push(i);
                p_top.push(l);
            }
        }
    }
    match asks.top_k {
        Some(_) => {
            out.push(id_rows(TOP_IDS, &top_ids, s));
            out.push(f32_rows(TOP_LOGITS, &top_logits, s));
        }
        None => out.push(f32_rows(LOGITS, &logits, s)),
    }
    out.push(f32_tensor(lp::LOGSUMEXP, &lse));
    if asks.prompt_top.is_some() {
        let r = p_lp.len();
        out.push(f32_tensor(lp::PROMPT_TOKEN_LOGPROBS, &p_lp));
        out.push(id_rows(lp::PROMPT_TOP_IDS, &p_ids, r));
        out.push(f32_rows(lp::PROMPT_TOP_LOGPROBS, &p_top, r));
    }
}

fn step_error(e: StepError) -> BackendError {
    match e {
        StepError::Overloaded(m) => err(ErrorTag::Overloaded, m),
        StepError::Busy(m) => err(ErrorTag::Busy, m),
        // A 400 (`context_length_exceeded`): the prompt can never fit.
        StepError::TooLarge(m) => err(ErrorTag::ContextFull, m),
        StepError::Engine(m) => BackendError::UnsupportedTensorType(format!("engine: {m}")),
    }
}

impl BackendExecutionContext for Session {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = id.name().unwrap_or(INPUT_IDS).to_string();
        let out = self.compute(Some(vec![NamedTensor {
            name,
            tensor: tensor.clone(),
        }]))?;
        self.outputs = out.unwrap_or_default();
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let found = match &id {
            Id::Index(i) => self.outputs.get(*i as usize),
            Id::Name(n) => self.outputs.iter().find(|o| &o.name == n),
        };
        found.map(|o| o.tensor.clone()).ok_or_else(|| bad(format!("no output {id:?}")))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let Some(inputs) = inputs else {
            return Ok(None); // WITX style: outputs were made by set_input
        };
        let mut outputs = Vec::new();
        let asks = Asks::read(&inputs)?;
        // Media tensors belong to the step of the same call.
        let (media, inputs): (Vec<_>, Vec<_>) = inputs.into_iter().partition(|i| [MEDIA, PIXELS, MEL].contains(&i.name.as_str()));
        if !media.is_empty() && !inputs.iter().any(|i| i.name == INPUT_IDS) {
            return Err(bad(format!("{MEDIA}, {PIXELS} and {MEL} go with {INPUT_IDS}")));
        }
        // A fork comes before the call's step.
        if let Some(f) = inputs.iter().find(|i| i.name == lp::FORK) {
            self.fork(&f.tensor)?;
        }
        for input in &inputs {
            match input.name.as_str() {
                INPUT_IDS => self.step(&input.tensor, &asks, &media, &mut outputs)?,
                METADATA => {
                    for (name, bytes) in [(METADATA, &self.model.info_json), (TOKENIZER, &self.model.tokenizer_blob)] {
                        outputs.push(NamedTensor {
                            name: name.into(),
                            tensor: Tensor::new(vec![bytes.len() as u32], TensorType::U8, bytes.clone()),
                        });
                    }
                }
                TOP_K | lp::FORK | lp::PROMPT_LOGPROBS | lp::ADJUST | lp::ADJUST_IDS | lp::ADJUST_COUNTS | lp::STREAMS | lp::STREAM_LENS | lp::ALLOWED | lp::ALLOWED_ROWS => {}
                other => {
                    return Err(bad(format!(
                        "unknown input tensor {other:?} (expected {INPUT_IDS}, {TOP_K}, {MEDIA}, {PIXELS}, {MEL}, {METADATA}, or a tensor of reka_protocol::logprobs)"
                    )))
                }
            }
        }
        Ok(Some(outputs))
    }
}

/// Runs blocking work; on a multi-threaded tokio runtime, lets tokio move
/// other tasks off this worker meanwhile.
pub(super) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}
