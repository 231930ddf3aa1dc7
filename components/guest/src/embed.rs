//! Embeddings through an embedding graph (the `reka_protocol::embed` part of
//! the wasi:nn contract): one compute with the texts, one vector per text back.

use crate::wasi::nn::graph::load_by_name;
use crate::wasi::nn::tensor::{Tensor, TensorType};
use crate::{f32s, failure, Failure};
use reka_protocol::embed::{encode_texts, EMBEDDINGS, EMBED_TOKENS, TEXTS};

/// What an embedding graph answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// One vector per text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the texts took, all together.
    pub tokens: u32,
}

/// Embeds `texts` with the embedding graph named `model`.
pub fn embed<S: AsRef<str>>(model: &str, texts: &[S]) -> Result<Embedded, Failure> {
    if texts.is_empty() {
        return Ok(Embedded { vectors: Vec::new(), tokens: 0 });
    }
    let graph = load_by_name(model).map_err(|e| failure(e, model))?;
    let ctx = graph.init_execution_context().map_err(|e| failure(e, model))?;
    let bytes = encode_texts(texts);
    let input = Tensor::new(&[bytes.len() as u32], TensorType::U8, &bytes);
    let out = ctx.compute(vec![(TEXTS.to_string(), input)]).map_err(|e| failure(e, model))?;
    let (mut vectors, mut tokens) = (None, None);
    for (name, t) in out {
        match name.as_str() {
            EMBEDDINGS => {
                let dims = t.dimensions();
                let width = dims.get(1).copied().unwrap_or(0) as usize;
                let flat = f32s(&t.data());
                if width == 0 || flat.len() != width * texts.len() {
                    return Err(Failure::Internal(format!("the backend returned embeddings of shape {dims:?} for {} texts", texts.len())));
                }
                vectors = Some(flat.chunks_exact(width).map(<[f32]>::to_vec).collect());
            }
            EMBED_TOKENS => tokens = t.data().first_chunk::<4>().map(|b| i32::from_le_bytes(*b).max(0) as u32),
            _ => {}
        }
    }
    let missing = |n: &str| Failure::Internal(format!("the backend returned no {n} tensor"));
    Ok(Embedded { vectors: vectors.ok_or_else(|| missing(EMBEDDINGS))?, tokens: tokens.ok_or_else(|| missing(EMBED_TOKENS))? })
}
