//! A minimal ONNX reader: decodes the ModelProto protobuf (our own wire-format
//! reader in [`wire`], no protobuf crate) into the parts an encoder needs to
//! rebuild its network natively: the graph's nodes (op type, inputs, outputs,
//! attributes), its initializers and `Constant` node values as [`OnnxTensor`]s,
//! and the declared input/output shapes. No operator is executed here.
//!
//! Tensor data may be `raw_data` (little-endian) or the typed repeated fields
//! (`float_data`, `int32_data`, `int64_data`, `double_data`). Float types
//! (f32, f16, bf16, f64) become [`TensorData::F32`]; integer and bool types
//! become [`TensorData::I64`]. External data (`data_location = EXTERNAL`) is
//! rejected.

mod wire;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use wire::{Field, Fields};

/// ONNX `TensorProto.DataType` values this reader decodes.
pub mod dtype {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const BFLOAT16: i32 = 16;
}

/// Element values of a tensor, widened to one float and one integer type.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor from an initializer or a `Constant` node.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxTensor {
    pub name: String,
    pub dims: Vec<usize>,
    /// The ONNX data type as stored in the file (see [`dtype`]).
    pub data_type: i32,
    pub data: TensorData,
}

impl OnnxTensor {
    /// The float values, or an error naming the tensor if it holds integers.
    pub fn f32s(&self) -> Result<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Ok(v),
            TensorData::I64(_) => bail!("ONNX tensor {:?} holds integers, not floats", self.name),
        }
    }

    /// The integer values, or an error naming the tensor if it holds floats.
    pub fn i64s(&self) -> Result<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Ok(v),
            TensorData::F32(_) => bail!("ONNX tensor {:?} holds floats, not integers", self.name),
        }
    }

    /// The single value of a scalar or one-element tensor, as f64.
    pub fn scalar(&self) -> Result<f64> {
        match &self.data {
            TensorData::F32(v) if v.len() == 1 => Ok(f64::from(v[0])),
            TensorData::I64(v) if v.len() == 1 => Ok(v[0] as f64),
            _ => bail!("ONNX tensor {:?} (dims {:?}) is not a scalar", self.name, self.dims),
        }
    }

    /// Element count implied by `dims`.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An attribute value; kinds this reader has no use for are kept as `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    Bytes(Vec<u8>),
    Tensor(OnnxTensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Other,
}

/// A graph node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(String, AttrValue)>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A dimension of a declared input/output shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Named(String),
    Unknown,
}

/// A declared graph input or output (tensor types only).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i32,
    /// `None` when the shape is not declared.
    pub shape: Option<Vec<Dim>>,
}

/// The decoded main graph of a model.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Nodes in file order (ONNX requires topological order).
    pub nodes: Vec<Node>,
    pub initializers: HashMap<String, OnnxTensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

impl Graph {
    /// Reads the `graph` of the ModelProto in `path`.
    pub fn load(path: &Path) -> Result<Graph> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Graph::from_model_bytes(&bytes).with_context(|| format!("parsing ONNX model {}", path.display()))
    }

    /// Decodes a serialized ModelProto and returns its graph.
    pub fn from_model_bytes(bytes: &[u8]) -> Result<Graph> {
        let mut graph = None;
        for f in Fields::new(bytes) {
            let f = f?;
            if f.number == 7 {
                graph = Some(parse_graph(f.bytes()?).context("in ModelProto.graph")?);
            }
        }
        graph.context("ModelProto has no graph")
    }

    /// An initializer, or the `value*` of the `Constant` node that outputs `name`.
    pub fn constant(&self, name: &str) -> Option<std::borrow::Cow<'_, OnnxTensor>> {
        use std::borrow::Cow;
        if let Some(t) = self.initializers.get(name) {
            return Some(Cow::Borrowed(t));
        }
        let node = self.producer(name).filter(|n| n.op_type == "Constant")?;
        let (attr, value) = node.attributes.first()?;
        let (dims, data) = match value {
            AttrValue::Tensor(t) => return Some(Cow::Borrowed(t)),
            AttrValue::Float(v) => (vec![], TensorData::F32(vec![*v])),
            AttrValue::Int(v) => (vec![], TensorData::I64(vec![*v])),
            AttrValue::Floats(v) => (vec![v.len()], TensorData::F32(v.clone())),
            AttrValue::Ints(v) => (vec![v.len()], TensorData::I64(v.clone())),
            _ => return None,
        };
        let data_type = if attr.starts_with("value_float") { dtype::FLOAT } else { dtype::INT64 };
        Some(Cow::Owned(OnnxTensor { name: name.to_string(), dims, data_type, data }))
    }

    /// The node that outputs `name`.
    pub fn producer(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.outputs.iter().any(|o| o == name))
    }

    /// The nodes that read `name`, in graph order.
    pub fn consumers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.inputs.iter().any(|i| i == name))
    }
}

fn parse_graph(buf: &[u8]) -> Result<Graph> {
    let mut g = Graph::default();
    for f in Fields::new(buf) {
        let f = f?;
        match f.number {
            1 => g.nodes.push(parse_node(f.bytes()?).with_context(|| format!("in node #{}", g.nodes.len()))?),
            5 => {
                let t = parse_tensor(f.bytes()?).context("in an initializer")?;
                g.initializers.insert(t.name.clone(), t);
            }
            11 => g.inputs.push(parse_value_info(f.bytes()?)?),
            12 => g.outputs.push(parse_value_info(f.bytes()?)?),
            _ => {}
        }
    }
    Ok(g)
}

fn parse_node(buf: &[u8]) -> Result<Node> {
    let mut n =
        Node { name: String::new(), op_type: String::new(), inputs: vec![], outputs: vec![], attributes: vec![] };
    for f in Fields::new(buf) {
        let f = f?;
        match f.number {
            1 => n.inputs.push(f.string()?),
            2 => n.outputs.push(f.string()?),
            3 => n.name = f.string()?,
            4 => n.op_type = f.string()?,
            5 => n.attributes.push(parse_attribute(f.bytes()?)?),
            _ => {}
        }
    }
    Ok(n)
}

fn parse_attribute(buf: &[u8]) -> Result<(String, AttrValue)> {
    let (mut name, mut value) = (String::new(), AttrValue::Other);
    let (mut floats, mut ints) = (Vec::new(), Vec::new());
    for f in Fields::new(buf) {
        let f = f?;
        match f.number {
            1 => name = f.string()?,
            2 => value = AttrValue::Float(f.float()?),
            3 => value = AttrValue::Int(f.int()?),
            4 => value = AttrValue::Bytes(f.bytes()?.to_vec()),
            5 => value = AttrValue::Tensor(parse_tensor(f.bytes()?).with_context(|| format!("attribute {name:?}"))?),
            7 => f.push_floats(&mut floats)?,
            8 => f.push_ints(&mut ints)?,
            _ => {}
        }
    }
    if !floats.is_empty() {
        value = AttrValue::Floats(floats);
    } else if !ints.is_empty() {
        value = AttrValue::Ints(ints);
    }
    Ok((name, value))
}

/// Decodes a TensorProto.
pub fn parse_tensor(buf: &[u8]) -> Result<OnnxTensor> {
    let mut name = String::new();
    let (mut dims, mut data_type, mut raw): (Vec<i64>, i32, Option<&[u8]>) = (vec![], 0, None);
    let (mut floats, mut ints, mut doubles) = (Vec::new(), Vec::new(), Vec::new());
    for f in Fields::new(buf) {
        let f: Field = f?;
        match f.number {
            1 => f.push_ints(&mut dims)?,
            2 => data_type = i32::try_from(f.int()?).context("data_type out of range")?,
            4 => f.push_floats(&mut floats)?,
            5 | 7 | 11 => f.push_ints(&mut ints)?,
            8 => name = f.string()?,
            9 => raw = Some(f.bytes()?),
            10 => f.push_doubles(&mut doubles)?,
            13 => bail!("tensor {name:?} uses external data, which is not supported"),
            14 if f.int()? != 0 => bail!("tensor {name:?} uses external data, which is not supported"),
            _ => {}
        }
    }
    let dims: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d).with_context(|| format!("tensor {name:?}: negative dim {d}")))
        .collect::<Result<_>>()?;
    let numel: usize = dims.iter().product();
    let data = match raw {
        Some(raw) => decode_raw(raw, data_type).with_context(|| format!("tensor {name:?}"))?,
        None => match data_type {
            dtype::FLOAT => TensorData::F32(floats),
            dtype::DOUBLE => TensorData::F32(doubles.into_iter().map(|d| d as f32).collect()),
            // f16/bf16 in int32_data hold the 16 bits in the low half.
            dtype::FLOAT16 => TensorData::F32(ints.iter().map(|&i| half::f16::from_bits(i as u16).to_f32()).collect()),
            dtype::BFLOAT16 => {
                TensorData::F32(ints.iter().map(|&i| half::bf16::from_bits(i as u16).to_f32()).collect())
            }
            dtype::INT32 | dtype::INT64 | dtype::INT8 | dtype::UINT8 | dtype::BOOL => TensorData::I64(ints),
            t => bail!("tensor {name:?}: unsupported data type {t}"),
        },
    };
    let len = match &data {
        TensorData::F32(v) => v.len(),
        TensorData::I64(v) => v.len(),
    };
    if len != numel {
        bail!("tensor {name:?}: dims {dims:?} need {numel} values, found {len}");
    }
    Ok(OnnxTensor { name, dims, data_type, data })
}

fn decode_raw(raw: &[u8], data_type: i32) -> Result<TensorData> {
    fn chunks<const N: usize>(raw: &[u8]) -> Result<impl Iterator<Item = [u8; N]> + '_> {
        if !raw.len().is_multiple_of(N) {
            bail!("raw_data of {} bytes is not a multiple of {N}", raw.len());
        }
        Ok(raw.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        }))
    }
    Ok(match data_type {
        dtype::FLOAT => TensorData::F32(chunks::<4>(raw)?.map(f32::from_le_bytes).collect()),
        dtype::DOUBLE => TensorData::F32(chunks::<8>(raw)?.map(|b| f64::from_le_bytes(b) as f32).collect()),
        dtype::FLOAT16 => TensorData::F32(chunks::<2>(raw)?.map(|b| half::f16::from_le_bytes(b).to_f32()).collect()),
        dtype::BFLOAT16 => TensorData::F32(chunks::<2>(raw)?.map(|b| half::bf16::from_le_bytes(b).to_f32()).collect()),
        dtype::INT64 => TensorData::I64(chunks::<8>(raw)?.map(i64::from_le_bytes).collect()),
        dtype::INT32 => TensorData::I64(chunks::<4>(raw)?.map(|b| i64::from(i32::from_le_bytes(b))).collect()),
        dtype::INT8 => TensorData::I64(raw.iter().map(|&b| i64::from(b as i8)).collect()),
        dtype::UINT8 | dtype::BOOL => TensorData::I64(raw.iter().map(|&b| i64::from(b)).collect()),
        t => bail!("unsupported data type {t}"),
    })
}

fn parse_value_info(buf: &[u8]) -> Result<ValueInfo> {
    let mut v = ValueInfo { name: String::new(), elem_type: 0, shape: None };
    for f in Fields::new(buf) {
        let f = f?;
        match f.number {
            1 => v.name = f.string()?,
            2 => {
                // TypeProto.tensor_type (1) -> elem_type (1), shape (2) -> dim (1).
                for t in Fields::new(f.bytes()?) {
                    let t = t?;
                    if t.number != 1 {
                        continue;
                    }
                    for tt in Fields::new(t.bytes()?) {
                        let tt = tt?;
                        match tt.number {
                            1 => v.elem_type = i32::try_from(tt.int()?).context("elem_type out of range")?,
                            2 => v.shape = Some(parse_shape(tt.bytes()?)?),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

fn parse_shape(buf: &[u8]) -> Result<Vec<Dim>> {
    let mut dims = Vec::new();
    for f in Fields::new(buf) {
        let f = f?;
        if f.number != 1 {
            continue;
        }
        let mut dim = Dim::Unknown;
        for d in Fields::new(f.bytes()?) {
            let d = d?;
            match d.number {
                1 => dim = Dim::Fixed(d.int()?),
                2 => dim = Dim::Named(d.string()?),
                _ => {}
            }
        }
        dims.push(dim);
    }
    Ok(dims)
}

#[cfg(test)]
mod tests;
