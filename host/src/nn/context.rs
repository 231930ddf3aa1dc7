//! One generation session behind a wasi:nn execution context.
//!
//! `compute` with `input_ids` appends tokens to the session's KV cache (held by
//! the model's [`Scheduler`], which batches all sessions' steps) and returns the
//! last position's logits; `compute` with `metadata` returns the model info
//! JSON. Errors carry a [`ErrorTag`] prefix so that guests can map them.

use super::scheduler::{Scheduler, StepError};
use crate::model::LoadedModel;
use super::scheduler::Embeds;
use reka_protocol::{ErrorTag, MediaSpan, INPUT_IDS, LOGITS, MEDIA, MEL, METADATA, PIXELS, TOKENIZER, TOP_IDS, TOP_K, TOP_LOGITS};
use std::sync::Arc;
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, Id, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// A session: the shared model plus this conversation's place in the engine.
pub struct Session {
    model: Arc<LoadedModel>,
    engine: Arc<Scheduler>,
    seq: u64,
    /// Positions appended so far.
    len: usize,
    outputs: Vec<NamedTensor>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.engine.free(self.seq);
    }
}

/// A tagged error. wasmtime-wasi-nn hands guests only the top-level `Display` of
/// a backend error, and `BackendAccess` displays a fixed text that drops ours;
/// `UnsupportedTensorType` is the one variant whose text carries a message, so
/// the tag travels inside it (the guest looks for the tag anywhere in the text).
fn err(tag: ErrorTag, msg: impl std::fmt::Display) -> BackendError {
    BackendError::UnsupportedTensorType(format!("{}{msg}", tag.prefix()))
}

impl Session {
    pub fn new(model: Arc<LoadedModel>, engine: Arc<Scheduler>) -> Self {
        Self {
            model,
            seq: engine.open(),
            engine,
            len: 0,
            outputs: Vec::new(),
        }
    }

    /// The embeddings of a step's media placeholders, from its media tensors.
    fn media(&self, inputs: &[NamedTensor], n_ids: usize) -> Result<Embeds, BackendError> {
        let find = |name: &str| inputs.iter().find(|i| i.name == name).map(|i| &i.tensor);
        let Some(spans) = find(MEDIA) else {
            return Ok(Vec::new());
        };
        let bad = |m: String| err(ErrorTag::BadInput, m);
        let towers = self.model.media.as_ref().ok_or_else(|| bad(format!("the model `{}` reads no media", self.model.info.name)))?;
        if spans.ty != TensorType::I32 {
            return Err(bad(format!("{MEDIA} must be an i32 tensor")));
        }
        let spans = MediaSpan::from_rows(&le_words(&spans.data).map(i32::from_le_bytes).collect::<Vec<_>>()).map_err(bad)?;
        let floats = |name: &str| -> Result<Vec<f32>, BackendError> {
            match find(name) {
                None => Ok(Vec::new()),
                Some(t) if t.ty == TensorType::Fp32 => Ok(le_words(&t.data).map(f32::from_le_bytes).collect()),
                Some(_) => Err(bad(format!("{name} must be an f32 tensor"))),
            }
        };
        let (pixels, mel) = (floats(PIXELS)?, floats(MEL)?);
        towers.embed(&spans, &pixels, &mel, n_ids).map_err(bad)
    }

    fn step(&mut self, t: &Tensor, media: &[NamedTensor]) -> Result<Vec<f32>, BackendError> {
        if t.ty != TensorType::I32 {
            return Err(err(ErrorTag::BadInput, "input_ids must be an i32 tensor"));
        }
        let ids: Vec<u32> = le_words(&t.data).map(|w| i32::from_le_bytes(w) as u32).collect();
        let vocab = self.model.info.vocab_size;
        if ids.is_empty() || ids.iter().any(|&i| i >= vocab) {
            return Err(err(
                ErrorTag::BadInput,
                format!("input_ids must be 1 or more ids below {vocab}"),
            ));
        }
        let ctx = self.model.info.context_length as usize;
        if self.len + ids.len() > ctx {
            return Err(err(
                ErrorTag::ContextFull,
                format!("{} + {} tokens exceed the context of {ctx}", self.len, ids.len()),
            ));
        }
        let n = ids.len();
        // The media encoders run here, on the request's thread, before its
        // engine step: other streams keep decoding meanwhile.
        let embeds = blocking(|| self.media(media, n))?;
        // The engine step may wait for other sessions' rows.
        let logits = blocking(|| self.engine.step_with(self.seq, ids, embeds)).map_err(|e| match e {
            StepError::Overloaded(m) => err(ErrorTag::Overloaded, m),
            StepError::Busy(m) => err(ErrorTag::Busy, m),
            // A 400 (`context_length_exceeded`): the prompt can never fit.
            StepError::TooLarge(m) => err(ErrorTag::ContextFull, m),
            StepError::Engine(m) => BackendError::UnsupportedTensorType(format!("engine: {m}")),
        })?;
        self.len += n;
        Ok(logits)
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
        found
            .map(|o| o.tensor.clone())
            .ok_or_else(|| err(ErrorTag::BadInput, format!("no output {id:?}")))
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let Some(inputs) = inputs else {
            return Ok(None); // WITX style: outputs were made by set_input
        };
        let mut outputs = Vec::new();
        let top_k = inputs.iter().find(|i| i.name == TOP_K).map(|i| top_k_of(&i.tensor)).transpose()?;
        // Media tensors belong to the step of the same call.
        let (media, inputs): (Vec<_>, Vec<_>) = inputs.into_iter().partition(|i| [MEDIA, PIXELS, MEL].contains(&i.name.as_str()));
        if !media.is_empty() && !inputs.iter().any(|i| i.name == INPUT_IDS) {
            return Err(err(ErrorTag::BadInput, format!("{MEDIA}, {PIXELS} and {MEL} go with {INPUT_IDS}")));
        }
        for input in inputs {
            match input.name.as_str() {
                INPUT_IDS => {
                    let logits = self.step(&input.tensor, &media)?;
                    match top_k {
                        None => outputs.push(f32_tensor(LOGITS, &logits)),
                        Some(k) => {
                            // Only the k best cross into the guest, not the vocabulary.
                            let top = reka_protocol::top_k(&logits, k);
                            let ids: Vec<u8> = top.iter().flat_map(|t| (t.0 as i32).to_le_bytes()).collect();
                            outputs.push(NamedTensor {
                                name: TOP_IDS.into(),
                                tensor: Tensor::new(vec![top.len() as u32], TensorType::I32, ids),
                            });
                            let logits: Vec<f32> = top.iter().map(|t| t.1).collect();
                            outputs.push(f32_tensor(TOP_LOGITS, &logits));
                        }
                    }
                }
                TOP_K => {}
                METADATA => {
                    for (name, bytes) in [
                        (METADATA, &self.model.info_json),
                        (TOKENIZER, &self.model.tokenizer_blob),
                    ] {
                        outputs.push(NamedTensor {
                            name: name.into(),
                            tensor: Tensor::new(vec![bytes.len() as u32], TensorType::U8, bytes.clone()),
                        });
                    }
                }
                other => {
                    return Err(err(
                        ErrorTag::BadInput,
                        format!("unknown input tensor {other:?} (expected {INPUT_IDS}, {TOP_K}, {MEDIA}, {PIXELS}, {MEL} or {METADATA})"),
                    ))
                }
            }
        }
        Ok(Some(outputs))
    }
}

/// Little-endian 4-byte words.
fn le_words(data: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]])
}

fn f32_tensor(name: &str, v: &[f32]) -> NamedTensor {
    let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    NamedTensor { name: name.into(), tensor: Tensor::new(vec![v.len() as u32], TensorType::Fp32, data) }
}

/// The `k` of a [`TOP_K`] tensor: one positive i32.
fn top_k_of(t: &Tensor) -> Result<usize, BackendError> {
    match (t.ty, t.data.as_slice()) {
        (TensorType::I32, [a, b, c, d]) => match i32::from_le_bytes([*a, *b, *c, *d]) {
            k if k > 0 => Ok(k as usize),
            k => Err(err(ErrorTag::BadInput, format!("top_k must be positive, got {k}"))),
        },
        _ => Err(err(ErrorTag::BadInput, "top_k must be one i32")),
    }
}

/// Runs blocking work; on a multi-threaded tokio runtime, lets tokio move
/// other tasks off this worker meanwhile.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}
