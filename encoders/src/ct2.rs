//! A reader for CTranslate2's `model.bin`, written from the layout that
//! ctranslate2's Python converter writes (`ctranslate2/specs/model_spec.py`,
//! `ModelSpec._serialize`, binary version 6).
//!
//! The file, all integers little-endian (the writer uses `struct.pack` in native
//! order, which is little-endian on every machine ctranslate2 ships for):
//!
//! ```text
//! u32 binary_version                  (6)
//! str spec_name                       ("WhisperSpec", ...)
//! u32 spec_revision
//! u32 variable_count
//! variable_count × {
//!     str name                        ("encoder/conv1/weight", ...)
//!     u8  rank
//!     rank × u32 dim
//!     u8  dtype                       (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)
//!     u32 byte_count
//!     byte_count × u8 data            (row-major)
//! }
//! u32 alias_count
//! alias_count × { str alias, str target }
//! str = u16 length (bytes, including a trailing NUL), the UTF-8 bytes, NUL
//! ```
//!
//! Quantised weights (`int8`, `int16`) come with a companion `<name>_scale`
//! variable (f32; one value per output row for int8, one scalar for int16); the
//! real value is `stored / scale`. [`Ct2Model::f32_values`] applies it.
//!
//! [`Ct2Model::read`] keeps only the variables a filter accepts and seeks over
//! the others, so loading just an encoder never holds the decoder's bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use candle_core::{Device, Tensor};

/// The binary versions this reader understands (the layout above).
pub const SUPPORTED_BINARY_VERSIONS: &[u32] = &[6];

/// Why a CTranslate2 file could not be read or a variable not be used.
#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported CTranslate2 binary version {0} (this reader knows {SUPPORTED_BINARY_VERSIONS:?})")]
    UnsupportedVersion(u32),
    #[error("variable {name}: unknown dtype id {id} (known: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)")]
    UnknownDtype { name: String, id: u8 },
    #[error("malformed CTranslate2 file: {0}")]
    Format(String),
    #[error("variable {0} is not in the model (or was not loaded)")]
    Missing(String),
    #[error("variable {name}: {msg}")]
    Variable { name: String, msg: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

type Result<T> = std::result::Result<T, Ct2Error>;

/// The element types a CTranslate2 variable may have (ids as in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_id(id: u8, name: &str) -> Result<Self> {
        Ok(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return Err(Ct2Error::UnknownDtype { name: name.to_string(), id }),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One stored variable: its shape, element type and raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct Ct2Variable {
    pub dims: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub data: Vec<u8>,
}

impl Ct2Variable {
    /// The elements converted to f32 as stored (no scale applied).
    fn raw_f32(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            Ct2Dtype::F32 => d.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Ct2Dtype::F16 => d.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Ct2Dtype::Bf16 => d.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Ct2Dtype::I8 => d.iter().map(|&b| f32::from(b as i8)).collect(),
            Ct2Dtype::I16 => d.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]]))).collect(),
            Ct2Dtype::I32 => d.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32).collect(),
        }
    }

    /// The elements of an integer variable (flags, head counts, ids).
    fn ints(&self) -> Option<Vec<i64>> {
        let d = &self.data;
        Some(match self.dtype {
            Ct2Dtype::I8 => d.iter().map(|&b| i64::from(b as i8)).collect(),
            Ct2Dtype::I16 => d.chunks_exact(2).map(|b| i64::from(i16::from_le_bytes([b[0], b[1]]))).collect(),
            Ct2Dtype::I32 => {
                d.chunks_exact(4).map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
            }
            _ => return None,
        })
    }
}

/// The parts of a CTranslate2 model file that were kept.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    pub binary_version: u32,
    pub spec_name: String,
    pub spec_revision: u32,
    /// Kept variables by name.
    pub variables: HashMap<String, Ct2Variable>,
    /// Every alias in the file: alias name → target name.
    pub aliases: HashMap<String, String>,
    /// Names of all variables in the file, kept or skipped, in file order.
    pub all_names: Vec<String>,
}

struct Reader<R> {
    inner: R,
}

impl<R: Read + Seek> Reader<R> {
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.inner.read_exact(buf).map_err(|source| Ct2Error::Io { context: format!("reading {what}"), source })
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.fill(&mut buf, what).map(|()| buf)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what).map(|()| buf)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let len = usize::from(self.u16(what)?);
        let mut bytes = self.bytes(len, what)?;
        if bytes.pop() != Some(0) {
            return Err(Ct2Error::Format(format!("{what}: string is not NUL-terminated")));
        }
        String::from_utf8(bytes).map_err(|e| Ct2Error::Format(format!("{what}: not UTF-8: {e}")))
    }
    fn skip(&mut self, n: usize, what: &str) -> Result<()> {
        let n = i64::try_from(n).map_err(|_| Ct2Error::Format(format!("{what}: size too large")))?;
        self.inner.seek_relative(n).map_err(|source| Ct2Error::Io { context: format!("skipping {what}"), source })
    }
}

impl Ct2Model {
    /// Reads `path`, keeping the variables for which `keep(name)` is true.
    pub fn read(path: &Path, keep: impl Fn(&str) -> bool) -> Result<Self> {
        let file = File::open(path)
            .map_err(|source| Ct2Error::Io { context: format!("opening {}", path.display()), source })?;
        let total = file
            .metadata()
            .map_err(|source| Ct2Error::Io { context: format!("reading metadata of {}", path.display()), source })?
            .len();
        Self::from_reader(BufReader::with_capacity(1 << 20, file), total, keep)
    }

    /// Reads a model from any seekable stream of `total` bytes (the file size,
    /// used to reject impossible byte counts before allocating).
    pub fn from_reader<R: Read + Seek>(inner: R, total: u64, keep: impl Fn(&str) -> bool) -> Result<Self> {
        let mut r = Reader { inner };
        let binary_version = r.u32("binary version")?;
        if !SUPPORTED_BINARY_VERSIONS.contains(&binary_version) {
            return Err(Ct2Error::UnsupportedVersion(binary_version));
        }
        let spec_name = r.string("spec name")?;
        let spec_revision = r.u32("spec revision")?;
        let count = r.u32("variable count")?;
        let mut variables = HashMap::new();
        let mut all_names = Vec::new();
        for i in 0..count {
            let name = r.string(&format!("name of variable {i}"))?;
            let rank = r.u8(&format!("rank of {name}"))?;
            let mut dims = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                dims.push(r.u32(&format!("dims of {name}"))? as usize);
            }
            let dtype = Ct2Dtype::from_id(r.u8(&format!("dtype of {name}"))?, &name)?;
            let byte_count = r.u32(&format!("byte count of {name}"))? as usize;
            let expected = dims.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
            if expected != Some(byte_count) {
                return Err(Ct2Error::Format(format!(
                    "{name}: {byte_count} bytes stored for dims {dims:?} of {dtype:?}"
                )));
            }
            if byte_count as u64 > total {
                return Err(Ct2Error::Format(format!("{name}: {byte_count} bytes exceed the file size {total}")));
            }
            if keep(&name) {
                let data = r.bytes(byte_count, &format!("data of {name}"))?;
                variables.insert(name.clone(), Ct2Variable { dims, dtype, data });
            } else {
                r.skip(byte_count, &format!("data of {name}"))?;
            }
            all_names.push(name);
        }
        let alias_count = r.u32("alias count")?;
        let mut aliases = HashMap::new();
        for i in 0..alias_count {
            let alias = r.string(&format!("alias {i}"))?;
            let target = r.string(&format!("target of alias {alias}"))?;
            aliases.insert(alias, target);
        }
        Ok(Self { binary_version, spec_name, spec_revision, variables, aliases, all_names })
    }

    /// A kept variable by name or alias.
    pub fn get(&self, name: &str) -> Result<&Ct2Variable> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.variables.get(target).ok_or_else(|| Ct2Error::Missing(name.to_string()))
    }

    /// True when `name` (or an alias of it) was kept.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_ok()
    }

    /// A variable as f32 values with its dims. f32, f16 and bf16 convert
    /// directly; int8 / int16 need a `<name>_scale` companion (the value is
    /// `stored / scale`, the scale per first-dimension row or one scalar).
    /// A plain integer variable (no scale) is refused: use [`Self::ints`].
    pub fn f32_values(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let err = |msg: String| Ct2Error::Variable { name: name.to_string(), msg };
        let var = self.get(name)?;
        let mut values = var.raw_f32();
        match var.dtype {
            Ct2Dtype::F32 | Ct2Dtype::F16 | Ct2Dtype::Bf16 => {}
            Ct2Dtype::I32 => return Err(err("int32 variable has no float meaning (not a weight)".into())),
            Ct2Dtype::I8 | Ct2Dtype::I16 => {
                let scale_name = format!("{name}_scale");
                let scale = self.get(&scale_name).map_err(|_| err(format!("{:?} without {scale_name}", var.dtype)))?;
                if !matches!(scale.dtype, Ct2Dtype::F32 | Ct2Dtype::F16 | Ct2Dtype::Bf16) {
                    return Err(err(format!("{scale_name} has dtype {:?}", scale.dtype)));
                }
                let scale = scale.raw_f32();
                let rows = if scale.len() == 1 { 1 } else { var.dims.first().copied().unwrap_or(1) };
                if scale.len() != rows {
                    return Err(err(format!("{} scales for dims {:?}", scale.len(), var.dims)));
                }
                let per_row = (values.len() / rows.max(1)).max(1);
                for (row, s) in values.chunks_mut(per_row).zip(&scale) {
                    row.iter_mut().for_each(|v| *v /= s);
                }
            }
        }
        Ok((var.dims.clone(), values))
    }

    /// A variable as an f32 candle tensor of its stored shape on `device`.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        let (dims, values) = self.f32_values(name)?;
        Ok(Tensor::from_vec(values, dims, device)?)
    }

    /// The elements of an integer variable (int8, int16, int32).
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        let var = self.get(name)?;
        var.ints().ok_or_else(|| Ct2Error::Variable {
            name: name.to_string(),
            msg: format!("{:?} is not an integer", var.dtype),
        })
    }

    /// An integer scalar (e.g. `encoder/num_heads`).
    pub fn int_scalar(&self, name: &str) -> Result<i64> {
        match self.ints(name)?.as_slice() {
            [v] => Ok(*v),
            other => Err(Ct2Error::Variable {
                name: name.to_string(),
                msg: format!("{} values, want a scalar", other.len()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend(u16::try_from(s.len() + 1).unwrap_or(u16::MAX).to_le_bytes());
        out.extend(s.as_bytes());
        out.push(0);
    }

    fn var(out: &mut Vec<u8>, name: &str, dims: &[u32], dtype: u8, data: &[u8]) {
        string(out, name);
        out.push(dims.len() as u8);
        dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
        out.push(dtype);
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
    }

    /// A small file the way `ModelSpec._serialize` lays it out.
    fn sample(version: u32, w_dtype: u8) -> Vec<u8> {
        let mut f = version.to_le_bytes().to_vec();
        string(&mut f, "TestSpec");
        f.extend(3u32.to_le_bytes());
        f.extend(8u32.to_le_bytes());
        let w: Vec<u8> =
            [1.0f32, -2.0, 0.5, 3.0, 0.0, -0.25].iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        var(&mut f, "enc/w", &[2, 3], w_dtype, &w);
        let dec: Vec<u8> = [7.0f32, 8.0].iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        var(&mut f, "dec/x", &[2], 5, &dec);
        var(&mut f, "enc/b", &[3], 0, &[1.5f32, 2.5, -3.5].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
        var(&mut f, "enc/q", &[2, 2], 1, &[10, 246, 127, 0]);
        var(&mut f, "enc/q_scale", &[2], 0, &[10.0f32, 127.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
        var(&mut f, "enc/r", &[2], 2, &[2048i16, -512].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
        var(&mut f, "enc/r_scale", &[], 0, &1024f32.to_le_bytes());
        var(&mut f, "enc/n", &[], 2, &6i16.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        string(&mut f, "enc/alias");
        string(&mut f, "enc/b");
        f
    }

    fn read(bytes: Vec<u8>) -> Result<Ct2Model> {
        let total = bytes.len() as u64;
        Ct2Model::from_reader(Cursor::new(bytes), total, |n| n.starts_with("enc/"))
    }

    #[test]
    fn reads_converts_skips_and_aliases() -> Result<()> {
        let m = read(sample(6, 4))?;
        assert_eq!((m.spec_name.as_str(), m.spec_revision, m.binary_version), ("TestSpec", 3, 6));
        assert_eq!(m.all_names.len(), 8);
        assert!(!m.variables.contains_key("dec/x"), "filtered variable must not be held");
        assert!(matches!(m.get("dec/x"), Err(Ct2Error::Missing(_))));
        assert_eq!(m.f32_values("enc/w")?, (vec![2, 3], vec![1.0, -2.0, 0.5, 3.0, 0.0, -0.25]));
        assert_eq!(m.f32_values("enc/alias")?.1, vec![1.5, 2.5, -3.5]);
        assert_eq!(m.f32_values("enc/q")?.1, vec![1.0, -1.0, 1.0, 0.0]);
        assert_eq!(m.f32_values("enc/r")?.1, vec![2.0, -0.5]);
        assert_eq!(m.int_scalar("enc/n")?, 6);
        assert!(m.f32_values("enc/n").is_err(), "int16 without a scale is not a weight");
        let t = m.tensor("enc/w", &Device::Cpu)?;
        assert_eq!(t.dims(), &[2, 3]);
        Ok(())
    }

    #[test]
    fn refuses_bad_files() {
        assert!(matches!(read(sample(5, 4)), Err(Ct2Error::UnsupportedVersion(5))));
        assert!(matches!(read(sample(6, 9)), Err(Ct2Error::UnknownDtype { id: 9, .. })));
        // f32 declared for f16 bytes: the byte count no longer fits the dims.
        assert!(matches!(read(sample(6, 0)), Err(Ct2Error::Format(_))));
        let mut cut = sample(6, 4);
        cut.truncate(cut.len() - 5);
        assert!(matches!(read(cut), Err(Ct2Error::Io { .. })));
    }
}
