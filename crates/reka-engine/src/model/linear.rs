//! A weight matrix as the decoder uses it: GGUF blocks that our kernels compute
//! with directly, in llama.cpp's numerics, on all cores (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, Q4_K, Q6_K in 16-row tiles; Q2_K, Q3_K, Q5_K in GGUF's rows),
//! bf16/f16 matrices
//! kept 16-bit (our kernel widens a row at a time), or a candle [`QMatMul`]
//! for every other format (other GGUF types, f32 tensors).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};
use reka_kernels::half_matmul::{self, HalfMatrix, HalfType};
use reka_kernels::quant::{QMatrix, QType};
use reka_kernels::kquant::{self, KMatrix, KType};
use reka_kernels::kquant_tiles::{self, KTiled};
use reka_kernels::quant_tiles::{self, Tiled};

/// `y = x · Wᵀ` for `x` `[t, in]`.
pub enum Linear {
    Blocks(Tiled),
    KQuant(KMatrix),
    KTiles(KTiled),
    Half(HalfMatrix),
    Candle(QMatMul),
}

impl Linear {
    /// Takes a GGUF tensor `[out, in]`.
    pub fn from_qtensor(q: QTensor) -> Result<Self> {
        let qtype = match q.dtype() {
            GgmlDType::Q4_0 => Some(QType::Q4_0),
            GgmlDType::Q4_1 => Some(QType::Q4_1),
            GgmlDType::Q8_0 => Some(QType::Q8_0),
            GgmlDType::Q5_0 => Some(QType::Q5_0),
            GgmlDType::Q5_1 => Some(QType::Q5_1),
            _ => None,
        };
        let ktype = match q.dtype() {
            GgmlDType::Q2K => Some(KType::Q2K),
            GgmlDType::Q3K => Some(KType::Q3K),
            GgmlDType::Q4K => Some(KType::Q4K),
            GgmlDType::Q5K => Some(KType::Q5K),
            GgmlDType::Q6K => Some(KType::Q6K),
            _ => None,
        };
        if let Some(kt) = ktype {
            let (rows, cols) = q.shape().dims2()?;
            let m = KMatrix::new(kt, rows, cols, q.data()?.into_owned()).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            return Ok(match KTiled::from_matrix(&m) {
                Some(t) => Linear::KTiles(t),
                None => Linear::KQuant(m),
            });
        }
        match qtype {
            Some(qt) => {
                let (rows, cols) = q.shape().dims2()?;
                let m = QMatrix::new(qt, rows, cols, q.data()?.into_owned())
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                Ok(Linear::Blocks(Tiled::from_matrix(&m)))
            }
            None => match q.dtype() {
                GgmlDType::BF16 | GgmlDType::F16 => {
                    let kind = if q.dtype() == GgmlDType::BF16 { HalfType::Bf16 } else { HalfType::F16 };
                    let (rows, cols) = q.shape().dims2()?;
                    let bits = q.data()?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                    let m = HalfMatrix::new(kind, rows, cols, bits).map_err(candle_core::Error::Msg)?;
                    Ok(Linear::Half(m))
                }
                _ => Ok(Linear::Candle(QMatMul::from_qtensor(q)?)),
            },
        }
    }

    /// Which kernel computes this linear, for the bench and the log:
    /// `q4_1 tiles/avx2`, `bf16 rows`, `candle q3k`, ….
    pub fn kernel(&self) -> String {
        match self {
            Linear::Blocks(m) => format!("{} tiles/{}", format!("{:?}", m.qtype).to_lowercase(), quant_tiles::level()),
            Linear::KQuant(m) => format!("{} rows/{}", format!("{:?}", m.ktype).to_lowercase(), kquant::level()),
            Linear::KTiles(m) => format!("{} tiles/{}", format!("{:?}", m.ktype).to_lowercase(), kquant_tiles::level()),
            Linear::Half(m) => format!("{} rows/{}", if m.kind == HalfType::Bf16 { "bf16" } else { "f16" }, reka_kernels::cpu::selected()),
            Linear::Candle(QMatMul::QTensor(q)) => format!("candle {:?}", q.dtype()).to_lowercase(),
            Linear::Candle(_) => "candle f32".into(),
        }
    }

    /// A plain (unquantized) weight tensor `[out, in]`.
    pub fn from_tensor(w: Tensor) -> Self {
        Linear::Candle(QMatMul::Tensor(w))
    }

    /// How the weights are held: `blocks`, `bf16`, `f16` or `candle`.
    pub fn kind(&self) -> &'static str {
        match self {
            Linear::Blocks(_) | Linear::KQuant(_) | Linear::KTiles(_) => "blocks",
            Linear::Half(m) if m.kind == HalfType::Bf16 => "bf16",
            Linear::Half(_) => "f16",
            Linear::Candle(_) => "candle",
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Candle(m) => m.forward(x),
            Linear::Blocks(m) => {
                let (t, xs) = rows_of(x, m.cols)?;
                Tensor::from_vec(quant_tiles::matmul(m, &xs, t), (t, m.rows), x.device())
            }
            Linear::KQuant(m) => {
                let (t, xs) = rows_of(x, m.cols)?;
                Tensor::from_vec(kquant::matmul(m, &xs, t), (t, m.rows), x.device())
            }
            Linear::KTiles(m) => {
                let (t, xs) = rows_of(x, m.cols)?;
                Tensor::from_vec(kquant_tiles::matmul(m, &xs, t), (t, m.rows), x.device())
            }
            Linear::Half(m) => {
                let (t, xs) = rows_of(x, m.cols)?;
                Tensor::from_vec(half_matmul::matmul(m, &xs, t), (t, m.rows), x.device())
            }
        }
    }
}

/// `[t, rows]` results of several linears that read the same `x` `[t, in]`:
/// block weights share one quantization of `x` and one parallel pass.
pub fn forward_many(ls: &[&Linear], x: &Tensor) -> Result<Vec<Vec<f32>>> {
    let tiles: Option<Vec<&Tiled>> = ls
        .iter()
        .map(|l| match l {
            Linear::Blocks(m) => Some(m),
            _ => None,
        })
        .collect();
    let kquants: Option<Vec<&KMatrix>> = ls
        .iter()
        .map(|l| match l {
            Linear::KQuant(m) => Some(m),
            _ => None,
        })
        .collect();
    let ktiles: Option<Vec<&KTiled>> = ls
        .iter()
        .map(|l| match l {
            Linear::KTiles(m) => Some(m),
            _ => None,
        })
        .collect();
    let cols = |c: Vec<usize>| -> Result<usize> {
        match c.split_first() {
            Some((first, rest)) if rest.iter().all(|c| c == first) => Ok(*first),
            _ => Err(candle_core::Error::Msg("linears of one pass must share their input width".into())),
        }
    };
    match (tiles, kquants, ktiles) {
        (Some(ms), _, _) if !ms.is_empty() => {
            let (t, xs) = rows_of(x, cols(ms.iter().map(|m| m.cols).collect())?)?;
            Ok(quant_tiles::matmul_many(&ms, &xs, t))
        }
        (_, Some(ms), _) if !ms.is_empty() => {
            let (t, xs) = rows_of(x, cols(ms.iter().map(|m| m.cols).collect())?)?;
            Ok(kquant::matmul_many(&ms, &xs, t))
        }
        (_, _, Some(ms)) if !ms.is_empty() => {
            let (t, xs) = rows_of(x, cols(ms.iter().map(|m| m.cols).collect())?)?;
            Ok(kquant_tiles::matmul_many(&ms, &xs, t))
        }
        _ => ls.iter().map(|l| l.forward(x)?.flatten_all()?.to_vec1::<f32>()).collect(),
    }
}

/// The activation rows of `x` `[t, cols]` as one f32 slice.
fn rows_of(x: &Tensor, want: usize) -> Result<(usize, Vec<f32>)> {
    let (t, cols) = x.dims2()?;
    if cols != want {
        return Err(candle_core::Error::Msg(format!("input has {cols} columns, weight {want}")));
    }
    Ok((t, x.flatten_all()?.to_vec1::<f32>()?))
}
