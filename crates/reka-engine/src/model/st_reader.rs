//! Reads tensors out of safetensors files with plain positioned reads, one chunk
//! at a time, converting each chunk into the dtype the engine keeps. The file is
//! never mapped, so the process holds one copy of the weights (the kernel's page
//! cache, which it may drop, aside), and a 16-bit checkpoint can stay 16-bit.
//! Progress is logged as the bytes come in.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use half::{bf16, f16};
use reka_kernels::half_matmul::{HalfMatrix, HalfType};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The element types a checkpoint may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    F32,
    Bf16,
    F16,
}

impl Stored {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "F32" => Stored::F32,
            "BF16" => Stored::Bf16,
            "F16" => Stored::F16,
            other => bail!("tensors of type {other} are not supported (F32, BF16, F16 are)"),
        })
    }

    fn size(self) -> usize {
        match self {
            Stored::F32 => 4,
            Stored::Bf16 | Stored::F16 => 2,
        }
    }
}

struct Entry {
    file: usize,
    dtype: Stored,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: u64,
    end: u64,
}

/// The tensors of one checkpoint (one or more shards).
pub struct Checkpoint {
    files: Vec<(PathBuf, File)>,
    tensors: HashMap<String, Entry>,
    total: u64,
    read: AtomicU64,
    reported: AtomicU64,
}

/// Bytes read per positioned read.
const CHUNK: usize = 8 << 20;

impl Checkpoint {
    /// Reads the headers of `paths`.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut tensors = HashMap::new();
        let mut total = 0;
        for (i, path) in paths.iter().enumerate() {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let len = f.metadata()?.len();
            let mut n = [0u8; 8];
            f.read_exact_at(&mut n, 0).with_context(|| format!("{}: no header", path.display()))?;
            let n = u64::from_le_bytes(n);
            if n > 100 << 20 || 8 + n > len {
                bail!("{}: header length {n} does not fit the file", path.display());
            }
            let mut header = vec![0u8; n as usize];
            f.read_exact_at(&mut header, 8)?;
            let header: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&header).with_context(|| format!("{}: header is not JSON", path.display()))?;
            for (name, v) in header {
                if name == "__metadata__" {
                    continue;
                }
                let dtype = Stored::parse(v["dtype"].as_str().unwrap_or("?")).with_context(|| format!("tensor {name}"))?;
                let shape: Vec<usize> = v["shape"]
                    .as_array()
                    .context("no shape")?
                    .iter()
                    .map(|d| d.as_u64().map(|d| d as usize).context("bad dimension"))
                    .collect::<Result<_>>()?;
                let off = v["data_offsets"].as_array().context("no data_offsets")?;
                let (a, b) = (
                    off.first().and_then(|x| x.as_u64()).context("bad offset")?,
                    off.get(1).and_then(|x| x.as_u64()).context("bad offset")?,
                );
                // Checked: a crafted header must not wrap a size or an offset around.
                let want = shape.iter().try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
                let (start, end) = ((8 + n).checked_add(a), (8 + n).checked_add(b));
                let (Some(want), Some(start), Some(end)) = (want, start, end) else {
                    bail!("{}: tensor {name} has a size or offsets past 2^64 bytes", path.display());
                };
                if end > len || b < a || b - a != want {
                    bail!("{}: tensor {name} has a bad byte range", path.display());
                }
                total += end - start;
                tensors.insert(name, Entry { file: i, dtype, shape, start, end });
            }
            files.push((path.clone(), f));
        }
        Ok(Self { files, tensors, total, read: AtomicU64::new(0), reported: AtomicU64::new(0) })
    }

    /// Whether the checkpoint has a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The stored shape of a tensor.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|e| e.shape.as_slice())
    }

    /// The stored type of the largest tensors (what "the checkpoint's dtype" means).
    pub fn main_dtype(&self) -> Option<Stored> {
        self.tensors.values().max_by_key(|e| e.end - e.start).map(|e| e.dtype)
    }

    fn entry(&self, name: &str, shape: &[usize]) -> Result<&Entry> {
        let e = self.tensors.get(name).with_context(|| format!("the checkpoint has no tensor {name}"))?;
        if e.shape != shape {
            bail!("tensor {name} has shape {:?}, the config wants {shape:?}", e.shape);
        }
        Ok(e)
    }

    /// Streams the tensor's bytes through `sink`, chunk by chunk.
    fn stream(&self, e: &Entry, mut sink: impl FnMut(&[u8])) -> Result<()> {
        let (path, f) = &self.files[e.file];
        let mut buf = vec![0u8; CHUNK.min((e.end - e.start) as usize)];
        let mut at = e.start;
        while at < e.end {
            let n = ((e.end - at) as usize).min(buf.len());
            f.read_exact_at(&mut buf[..n], at).with_context(|| format!("reading {}", path.display()))?;
            sink(&buf[..n]);
            at += n as u64;
            self.progress(n as u64);
        }
        Ok(())
    }

    /// Logs every tenth of the way.
    fn progress(&self, n: u64) {
        let done = self.read.fetch_add(n, Ordering::Relaxed) + n;
        let tenth = done * 10 / self.total.max(1);
        if self.reported.fetch_max(tenth, Ordering::Relaxed) < tenth {
            let gb = |b: u64| b as f64 / 1e9;
            tracing::info!("loading weights: {}% ({:.2} of {:.2} GB)", tenth * 10, gb(done), gb(self.total));
        }
    }

    /// The tensor as f32 values.
    pub fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let e = self.entry(name, shape)?;
        let mut out = Vec::with_capacity(shape.iter().product());
        self.stream(e, |b| match e.dtype {
            Stored::F32 => out.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            Stored::Bf16 => out.extend(b.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
            Stored::F16 => out.extend(b.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        })?;
        Ok(out)
    }

    /// The tensor as the bits of `kind` values: copied when stored so, narrowed
    /// (round to nearest) otherwise.
    pub fn halves(&self, name: &str, shape: &[usize], kind: HalfType) -> Result<Vec<u16>> {
        let e = self.entry(name, shape)?;
        let same = matches!((e.dtype, kind), (Stored::Bf16, HalfType::Bf16) | (Stored::F16, HalfType::F16));
        if same {
            let mut out = Vec::with_capacity(shape.iter().product());
            self.stream(e, |b| out.extend(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]))))?;
            return Ok(out);
        }
        let narrow = |x: f32| match kind {
            HalfType::Bf16 => bf16::from_f32(x).to_bits(),
            HalfType::F16 => f16::from_f32(x).to_bits(),
        };
        Ok(self.f32s(name, shape)?.into_iter().map(narrow).collect())
    }

    /// An f32 candle tensor.
    pub fn tensor(&self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(self.f32s(name, shape)?, shape, device)?)
    }

    /// A 16-bit weight matrix `[rows, cols]`.
    pub fn half_matrix(&self, name: &str, rows: usize, cols: usize, kind: HalfType) -> Result<HalfMatrix> {
        HalfMatrix::new(kind, rows, cols, self.halves(name, &[rows, cols], kind)?).map_err(anyhow::Error::msg)
    }
}

#[cfg(test)]
mod tests {
    use super::Checkpoint;

    /// A safetensors file with `header` and `data`, opened.
    fn open(name: &str, header: &str, data: &[u8]) -> anyhow::Result<Checkpoint> {
        let path = std::env::temp_dir().join(format!("reka-st-{}-{name}.safetensors", std::process::id()));
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(&path, bytes)?;
        let ck = Checkpoint::open(std::slice::from_ref(&path));
        let _ = std::fs::remove_file(&path);
        ck
    }

    /// Regressions from fuzzing (fuzz/corpus/safetensors/crash-*): sizes and
    /// offsets that wrapped around 2^64 were accepted.
    #[test]
    fn wrapping_sizes_and_offsets_are_refused() {
        // 3 × 6148914691236517206 elements wrap to 2 in 64 bits: 8 bytes "fit".
        let e = open("shape", r#"{"a":{"dtype":"F32","shape":[3,6148914691236517206],"data_offsets":[0,8]}}"#, &[0; 8]);
        assert!(e.err().is_some_and(|e| e.to_string().contains("past 2^64")));
        // 8 + header + offset wraps to 0: the header itself would be read as data.
        let probe = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551000,18446744073709551004]}}"#;
        let a = u64::MAX - 8 - probe.len() as u64 + 1;
        let header = format!(r#"{{"a":{{"dtype":"F32","shape":[1],"data_offsets":[{a},{}]}}}}"#, a + 4);
        assert_eq!(header.len(), probe.len());
        let e = open("offset", &header, &[0; 4]);
        assert!(e.err().is_some_and(|e| e.to_string().contains("past 2^64")));
        // A good one still opens.
        let ck = open("good", r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &[0; 8]).expect("a valid file");
        assert_eq!(ck.shape("a"), Some(&[2usize][..]));
    }
}
