//! What the guest components share: the `wasi:nn` bindings (the other components
//! reuse them through wit-bindgen's `with`) and [`Session`], one model session
//! following the contract in `reka-protocol`.

wit_bindgen::generate!({
    world: "nn-client",
    path: "../../wit",
    generate_all,
});

mod embed;
mod streams;
pub use embed::{embed, Embedded};
pub use streams::{Ask, Dist, StreamOut, Stepped};

use reka_protocol::{ErrorTag, MediaSpan, ModelInfo, INPUT_IDS, LOGITS, MEDIA, MEL, METADATA, PIXELS, TOKENIZER, TOP_IDS, TOP_K, TOP_LOGITS};
use reka_tokenizer::Tokenizer;
use wasi::nn::errors::ErrorCode;
use wasi::nn::graph::{load_by_name, Graph};
use wasi::nn::inference::GraphExecutionContext;
use wasi::nn::tensor::{Tensor, TensorType};

/// Why a session call failed, in the terms the components' WIT errors use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No graph of that name.
    ModelNotFound(String),
    /// The context cannot take more tokens.
    ContextFull(String),
    /// The input was refused.
    BadInput(String),
    /// The engine cannot take the session now.
    Overloaded(String),
    /// Too many sessions are waiting.
    Busy(String),
    /// Anything else.
    Internal(String),
}

impl Failure {
    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            Failure::ModelNotFound(m)
            | Failure::ContextFull(m)
            | Failure::BadInput(m)
            | Failure::Overloaded(m)
            | Failure::Busy(m)
            | Failure::Internal(m) => m,
        }
    }
}

fn failure(e: wasi::nn::errors::Error, model: &str) -> Failure {
    let msg = e.data();
    match e.code() {
        ErrorCode::NotFound => Failure::ModelNotFound(format!("The model `{model}` does not exist.")),
        _ => {
            let tag = ErrorTag::of(&msg);
            // The host's text after the tag, without what wasi:nn put before it.
            let text = tag
                .and_then(|t| msg.find(t.prefix()).map(|i| msg[i + t.prefix().len()..].to_string()))
                .unwrap_or_else(|| msg.clone());
            match tag {
                Some(ErrorTag::ContextFull) => Failure::ContextFull(text),
                Some(ErrorTag::BadInput) => Failure::BadInput(text),
                Some(ErrorTag::Overloaded) => Failure::Overloaded(text),
                Some(ErrorTag::Busy) => Failure::Busy(text),
                None => Failure::Internal(msg),
            }
        }
    }
}

/// One session with a model: a wasi:nn execution context, i.e. one KV cache.
pub struct Session {
    model: String,
    ctx: GraphExecutionContext,
    _graph: Graph,
}

impl Session {
    /// Opens a new session with the graph named `model`.
    pub fn open(model: &str) -> Result<Session, Failure> {
        let graph = load_by_name(model).map_err(|e| failure(e, model))?;
        let ctx = graph.init_execution_context().map_err(|e| failure(e, model))?;
        Ok(Session {
            model: model.to_string(),
            ctx,
            _graph: graph,
        })
    }

    fn compute(&self, name: &str, tensor: Tensor) -> Result<Vec<(String, Tensor)>, Failure> {
        self.compute_all(vec![(name.to_string(), tensor)])
    }

    fn compute_all(&self, inputs: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, Failure> {
        self.ctx.compute(inputs).map_err(|e| failure(e, &self.model))
    }

    fn output(outputs: Vec<(String, Tensor)>, name: &str) -> Result<Tensor, Failure> {
        outputs
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| Failure::Internal(format!("the backend returned no {name} tensor")))
    }

    /// The model's metadata (template, context length, stop tokens) and its
    /// ready-built tokenizer.
    pub fn model(&self) -> Result<(ModelInfo, Tokenizer), Failure> {
        let (mut json, mut blob) = (None, None);
        for (name, t) in self.compute(METADATA, Tensor::new(&[0], TensorType::U8, &[]))? {
            match name.as_str() {
                METADATA => json = Some(t.data()),
                TOKENIZER => blob = Some(t.data()),
                _ => {}
            }
        }
        let missing = |n: &str| Failure::Internal(format!("the backend returned no {n} tensor"));
        let json = json.ok_or_else(|| missing(METADATA))?;
        let blob = blob.ok_or_else(|| missing(TOKENIZER))?;
        let info = serde_json::from_slice(&json)
            .map_err(|e| Failure::Internal(format!("bad model metadata: {e}")))?;
        let tok = Tokenizer::from_compact(&blob)
            .map_err(|e| Failure::Internal(format!("bad tokenizer from the host: {e}")))?;
        Ok((info, tok))
    }

    /// Appends `ids` to the session (with `media` in their placeholders) and
    /// returns the last position's logits.
    pub fn step(&self, ids: &[u32], media: &StepMedia) -> Result<Vec<f32>, Failure> {
        let mut inputs = vec![(INPUT_IDS.to_string(), ids_tensor(ids))];
        media.push_tensors(&mut inputs);
        let out = self.compute_all(inputs)?;
        Ok(f32s(&Self::output(out, LOGITS)?.data()))
    }

    /// Appends `ids` and returns only the `k` best `(id, logit)` of the last
    /// position, best first: the host picks them, so the vocabulary's logits
    /// never cross into the guest.
    pub fn step_top(&self, ids: &[u32], k: u32, media: &StepMedia) -> Result<Vec<(u32, f32)>, Failure> {
        let k_t = Tensor::new(&[1], TensorType::I32, &(k as i32).to_le_bytes());
        let mut inputs = vec![(INPUT_IDS.to_string(), ids_tensor(ids)), (TOP_K.to_string(), k_t)];
        media.push_tensors(&mut inputs);
        let out = self.compute_all(inputs)?;
        let (mut top_ids, mut top_logits) = (None, None);
        for (name, t) in out {
            match name.as_str() {
                TOP_IDS => top_ids = Some(t.data()),
                TOP_LOGITS => top_logits = Some(t.data()),
                _ => {}
            }
        }
        let missing = |n: &str| Failure::Internal(format!("the backend returned no {n} tensor"));
        let ids = top_ids.ok_or_else(|| missing(TOP_IDS))?;
        let logits = f32s(&top_logits.ok_or_else(|| missing(TOP_LOGITS))?);
        Ok(ids
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
            .zip(logits)
            .collect())
    }
}

/// Media for one step: where they go and their data, in span order.
#[derive(Debug, Default, Clone)]
pub struct StepMedia {
    pub spans: Vec<MediaSpan>,
    /// Pixels of the image and video spans, back to back.
    pub pixels: Vec<f32>,
    /// Log-mel of the audio spans, back to back.
    pub mel: Vec<f32>,
}

impl StepMedia {
    /// The media tensors of the wasi:nn contract; none when there are no spans.
    fn push_tensors(&self, inputs: &mut Vec<(String, Tensor)>) {
        if self.spans.is_empty() {
            return;
        }
        let rows: Vec<u8> = self.spans.iter().flat_map(|s| s.to_row()).flat_map(i32::to_le_bytes).collect();
        inputs.push((MEDIA.to_string(), Tensor::new(&[self.spans.len() as u32, 4], TensorType::I32, &rows)));
        for (name, v) in [(PIXELS, &self.pixels), (MEL, &self.mel)] {
            if !v.is_empty() {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                inputs.push((name.to_string(), Tensor::new(&[v.len() as u32], TensorType::Fp32, &bytes)));
            }
        }
    }
}

fn ids_tensor(ids: &[u32]) -> Tensor {
    let bytes: Vec<u8> = ids.iter().flat_map(|&i| (i as i32).to_le_bytes()).collect();
    Tensor::new(&[ids.len() as u32], TensorType::I32, &bytes)
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Defines `fn to_error(Failure) -> Error` for a component whose WIT bindings
/// have their own `Error` record and `ErrorKind` enum (each component generates
/// its own copy of `reka:inference/types`).
#[macro_export]
macro_rules! failure_to_wit_error {
    ($error:ident, $kind:ident) => {
        fn to_error(f: $crate::Failure) -> $error {
            use $crate::Failure as F;
            let kind = match &f {
                F::ModelNotFound(_) => $kind::ModelNotFound,
                F::ContextFull(_) => $kind::ContextFull,
                F::BadInput(_) => $kind::InvalidRequest,
                F::Overloaded(_) => $kind::Overloaded,
                F::Busy(_) => $kind::Busy,
                F::Internal(_) => $kind::Internal,
            };
            let message = f.message().to_string();
            $error { kind, message }
        }
    };
}
