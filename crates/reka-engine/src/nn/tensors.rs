//! Reading and writing the wasi:nn tensors of the contract (`reka-protocol`):
//! little-endian i32 / f32 words, with a clear `bad-input` error for a tensor
//! of the wrong type or size.

use reka_protocol::logprobs::Adjust;
use reka_protocol::ErrorTag;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// A tagged error. wasmtime-wasi-nn hands guests only the top-level `Display` of
/// a backend error, and `BackendAccess` displays a fixed text that drops ours;
/// `UnsupportedTensorType` is the one variant whose text carries a message, so
/// the tag travels inside it (the guest looks for the tag anywhere in the text).
pub fn err(tag: ErrorTag, msg: impl std::fmt::Display) -> BackendError {
    BackendError::UnsupportedTensorType(format!("{}{msg}", tag.prefix()))
}

/// A `bad-input` error.
pub fn bad(msg: impl std::fmt::Display) -> BackendError {
    err(ErrorTag::BadInput, msg)
}

/// Little-endian 4-byte words.
pub fn le_words(data: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]])
}

/// The values of an i32 tensor named `name`.
pub fn i32s(name: &str, t: &Tensor) -> Result<Vec<i32>, BackendError> {
    if t.ty != TensorType::I32 || !t.data.len().is_multiple_of(4) {
        return Err(bad(format!("{name} must be an i32 tensor")));
    }
    Ok(le_words(&t.data).map(i32::from_le_bytes).collect())
}

/// The values of an f32 tensor named `name`.
pub fn f32s(name: &str, t: &Tensor) -> Result<Vec<f32>, BackendError> {
    if t.ty != TensorType::Fp32 || !t.data.len().is_multiple_of(4) {
        return Err(bad(format!("{name} must be an f32 tensor")));
    }
    Ok(le_words(&t.data).map(f32::from_le_bytes).collect())
}

/// One non-negative i32 no larger than `max`.
pub fn count(name: &str, t: &Tensor, max: usize) -> Result<usize, BackendError> {
    match i32s(name, t)?.as_slice() {
        [k] if *k >= 0 && *k as usize <= max => Ok(*k as usize),
        _ => Err(bad(format!("{name} must be one i32 from 0 to {max}"))),
    }
}

/// Non-negative i32 values as indices.
pub fn indices(name: &str, t: &Tensor) -> Result<Vec<usize>, BackendError> {
    i32s(name, t)?
        .into_iter()
        .map(|v| usize::try_from(v).map_err(|_| bad(format!("{name} holds a negative value {v}"))))
        .collect()
}

/// The adjustments of [`reka_protocol::logprobs::ADJUST_IDS`] and
/// [`reka_protocol::logprobs::ADJUST`].
pub fn adjustments(ids: &Tensor, rows: &Tensor) -> Result<Vec<Adjust>, BackendError> {
    let ids = i32s("adjust_ids", ids)?;
    let rows = f32s("adjust", rows)?;
    if rows.len() != ids.len() * 3 {
        return Err(bad(format!("adjust must be [{}, 3] f32 for {} adjust_ids", ids.len(), ids.len())));
    }
    ids.iter()
        .zip(rows.chunks_exact(3))
        .map(|(&id, r)| {
            let id = u32::try_from(id).map_err(|_| bad(format!("adjust_ids holds a negative id {id}")))?;
            if r[1].is_nan() || r[1] <= 0.0 || r[0].is_nan() || r[2].is_nan() {
                return Err(bad("adjust rows need a positive repetition factor and no NaN"));
            }
            Ok(Adjust { id, bias: r[0], repetition: r[1], penalty: r[2] })
        })
        .collect()
}

pub fn f32_tensor(name: &str, v: &[f32]) -> NamedTensor {
    let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    NamedTensor { name: name.into(), tensor: Tensor::new(vec![v.len() as u32], TensorType::Fp32, data) }
}

/// An f32 tensor of `rows` rows.
pub fn f32_rows(name: &str, v: &[f32], rows: usize) -> NamedTensor {
    let mut t = f32_tensor(name, v);
    t.tensor.dimensions = vec![rows as u32, v.len().checked_div(rows).unwrap_or(0) as u32];
    t
}

/// An i32 tensor of `rows` rows of ids.
pub fn id_rows(name: &str, v: &[u32], rows: usize) -> NamedTensor {
    let data = v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect();
    let dims = vec![rows as u32, v.len().checked_div(rows).unwrap_or(0) as u32];
    NamedTensor { name: name.into(), tensor: Tensor::new(dims, TensorType::I32, data) }
}
