//! Writes a Hugging Face `LlamaForCausalLM` checkpoint directory with random
//! weights for a preset (or any Llama `config.json`), for benchmarks of model
//! sizes whose real weights we do not have.
//!
//! The directory holds `config.json`, `generation_config.json`,
//! `tokenizer_config.json` (cl100k_base's special tokens and the Reka chat
//! template; the host reads the vocabulary from tiktoken-rs), safetensors shards
//! `model-0000i-of-0000N.safetensors` split at tensor boundaries, and
//! `model.safetensors.index.json`.
//!
//! The weights are streamed: each shard's header is written first (its layout is
//! known from the shapes), then fixed-size chunks of [`CHUNK_ELEMS`] elements are
//! filled in parallel with rayon and written in order while the next round of
//! chunks is being filled. Nothing bigger than a chunk is held in memory (about
//! `2 x threads` chunks at a time).
//!
//! Values: matrices are uniform in `[-a, a)` with `a = std * sqrt(3)`, so their
//! standard deviation is `std` = the config's `initializer_range` (0.02 when it
//! has none); norm weights are 1.0. Each chunk draws from its own SplitMix64
//! stream seeded by (seed, tensor index, chunk index), so the output depends
//! only on the seed and the config, not on the thread count or the shard size,
//! and the bf16 / f16 / f32 checkpoints of one seed hold the same values rounded.

use crate::model::tiktoken::CL100K_SPECIALS;
use crate::presets::{self, Init, TensorSpec, WeightDtype};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Elements per chunk: 16 MiB of bf16, 32 MiB of f32. Part of the output's
/// definition (each chunk has its own random stream): changing it changes the
/// values written for a seed.
pub const CHUNK_ELEMS: usize = 8 << 20;

/// The Reka chat template, as the preprocess component renders it.
const CHAT_TEMPLATE: &str = include_str!("../../components/preprocess/templates/reka.jinja");

/// How to write a checkpoint.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub dtype: WeightDtype,
    /// Shards end at the tensor boundary before they would exceed this many
    /// bytes of tensor data (a bigger tensor gets a shard of its own).
    pub shard_bytes: u64,
    /// Report progress on stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 0,
            dtype: WeightDtype::Bf16,
            shard_bytes: 4_000_000_000,
            progress: false,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The safetensors shards, in order.
    pub shards: Vec<PathBuf>,
    pub tensors: usize,
    /// Bytes of tensor data (the index's `metadata.total_size`).
    pub data_bytes: u64,
    /// Time spent writing the shards.
    pub elapsed: Duration,
}

impl Written {
    /// Tensor data written per second, in GB (10^9 bytes).
    pub fn gb_per_s(&self) -> f64 {
        self.data_bytes as f64 / 1e9 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Writes the checkpoint of `config` (a `config.json` value) into `out`.
pub fn write_checkpoint(config: &Value, out: &Path, opts: &Options) -> Result<Written> {
    let tensors = presets::tensors(config)?;
    let std = config
        .get("initializer_range")
        .and_then(Value::as_f64)
        .unwrap_or(0.02);
    if !(std.is_finite() && std >= 0.0) {
        bail!("initializer_range {std} is not a standard deviation");
    }
    let shards = plan_shards(&tensors, opts.dtype, opts.shard_bytes.max(1))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_metadata(config, opts.dtype, out)?;

    let names: Vec<String> = (0..shards.len())
        .map(|i| format!("model-{:05}-of-{:05}.safetensors", i + 1, shards.len()))
        .collect();
    let paths: Vec<PathBuf> = names.iter().map(|n| out.join(n)).collect();
    let data_bytes: u64 = shards.iter().map(|s| s.data_bytes).sum();
    let amplitude = (std * 3f64.sqrt()) as f32;
    let started = Instant::now();
    stream_shards(&tensors, &shards, &paths, opts, amplitude, data_bytes)?;
    let elapsed = started.elapsed();

    let mut weight_map = Map::new();
    for (shard, name) in shards.iter().zip(&names) {
        for &t in &shard.tensors {
            weight_map.insert(tensors[t].name.clone(), json!(name));
        }
    }
    let index = json!({"metadata": {"total_size": data_bytes}, "weight_map": weight_map});
    write_json(&out.join("model.safetensors.index.json"), &index)?;
    if opts.progress {
        warn_stale_shards(out, &names);
    }
    Ok(Written {
        shards: paths,
        tensors: tensors.len(),
        data_bytes,
        elapsed,
    })
}

/// `config.json` (with `torch_dtype`), `generation_config.json`, `tokenizer_config.json`.
fn write_metadata(config: &Value, dtype: WeightDtype, out: &Path) -> Result<()> {
    let mut cfg = config.clone();
    if let Some(obj) = cfg.as_object_mut() {
        obj.insert("torch_dtype".into(), json!(dtype.torch_name()));
    }
    write_json(&out.join("config.json"), &cfg)?;
    let token = |k: &str| config.get(k).cloned().unwrap_or(Value::Null);
    let generation = json!({
        "bos_token_id": token("bos_token_id"),
        "eos_token_id": token("eos_token_id"),
    });
    write_json(&out.join("generation_config.json"), &generation)?;
    let added: Map<String, Value> = CL100K_SPECIALS
        .iter()
        .map(|(content, id)| {
            let entry = json!({
                "content": content, "lstrip": false, "normalized": false,
                "rstrip": false, "single_word": false, "special": true,
            });
            (id.to_string(), entry)
        })
        .collect();
    let tokenizer = json!({
        "add_bos_token": false,
        "add_eos_token": false,
        "added_tokens_decoder": added,
        "bos_token": null,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": false,
        "eos_token": "<|endoftext|>",
        "model_max_length": token("max_position_embeddings"),
    });
    write_json(&out.join("tokenizer_config.json"), &tokenizer)
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// One safetensors file: its tensors (indices into the tensor list) and header.
struct ShardPlan {
    tensors: Vec<usize>,
    /// Length prefix + JSON header, padded so the data starts 8-byte aligned.
    header: Vec<u8>,
    data_bytes: u64,
}

/// Splits the tensors, in order, into shards of at most `limit` data bytes.
fn plan_shards(tensors: &[TensorSpec], dtype: WeightDtype, limit: u64) -> Result<Vec<ShardPlan>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut size = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        let bytes = t.numel() * dtype.size();
        match groups.last_mut() {
            Some(g) if size + bytes <= limit => g.push(i),
            _ => {
                groups.push(vec![i]);
                size = 0;
            }
        }
        size += bytes;
    }
    groups
        .into_iter()
        .map(|g| {
            let (header, data_bytes) = shard_header(tensors, &g, dtype)?;
            Ok(ShardPlan {
                tensors: g,
                header,
                data_bytes,
            })
        })
        .collect()
}

/// The safetensors header of `ids`: u64 LE length, then JSON padded with spaces.
fn shard_header(tensors: &[TensorSpec], ids: &[usize], dtype: WeightDtype) -> Result<(Vec<u8>, u64)> {
    let mut map = Map::new();
    map.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0u64;
    for &i in ids {
        let t = &tensors[i];
        let end = offset + t.numel() * dtype.size();
        map.insert(
            t.name.clone(),
            json!({"dtype": dtype.safetensors_name(), "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::to_vec(&Value::Object(map))?;
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut header = (text.len() as u64).to_le_bytes().to_vec();
    header.extend_from_slice(&text);
    Ok((header, offset))
}

/// Chunk `chunk` of tensor `tensor` (its elements from `chunk * CHUNK_ELEMS`, `len` of them).
struct Job {
    shard: usize,
    tensor: usize,
    chunk: u64,
    len: usize,
}

/// The chunks of every shard, in file order.
fn jobs(tensors: &[TensorSpec], shards: &[ShardPlan]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (s, shard) in shards.iter().enumerate() {
        for &t in &shard.tensors {
            let n = tensors[t].numel();
            let chunks = n.div_ceil(CHUNK_ELEMS as u64);
            for c in 0..chunks {
                let len = (n - c * CHUNK_ELEMS as u64).min(CHUNK_ELEMS as u64) as usize;
                jobs.push(Job {
                    shard: s,
                    tensor: t,
                    chunk: c,
                    len,
                });
            }
        }
    }
    jobs
}

/// Fills and writes every chunk, one round of `threads` chunks filling while
/// the round before it is written.
fn stream_shards(
    tensors: &[TensorSpec],
    shards: &[ShardPlan],
    paths: &[PathBuf],
    opts: &Options,
    amplitude: f32,
    total: u64,
) -> Result<()> {
    let jobs = jobs(tensors, shards);
    let round = rayon::current_num_threads().max(2);
    let rounds: Vec<&[Job]> = jobs.chunks(round).collect();
    let fill = |bufs: &mut [Vec<u8>], round: &[Job]| {
        bufs.par_iter_mut().zip(round.par_iter()).for_each(|(buf, job)| {
            let seed = chunk_seed(opts.seed, job.tensor, job.chunk);
            fill_chunk(buf, tensors[job.tensor].init, job.len, opts.dtype, seed, amplitude);
        });
    };
    let mut front: Vec<Vec<u8>> = (0..round).map(|_| Vec::new()).collect();
    let mut back: Vec<Vec<u8>> = (0..round).map(|_| Vec::new()).collect();
    let mut sink = Sink::new(shards, paths, total, opts.progress);
    if let Some(first) = rounds.first() {
        fill(&mut front, first);
    }
    for (i, current) in rounds.iter().enumerate() {
        let next = rounds.get(i + 1);
        let (written, ()) = rayon::join(
            || sink.write_round(current, &front),
            || {
                if let Some(next) = next {
                    fill(&mut back, next);
                }
            },
        );
        written?;
        std::mem::swap(&mut front, &mut back);
    }
    sink.finish()
}

/// Writes chunks in order into the shard files, opening each with its header.
struct Sink<'a> {
    shards: &'a [ShardPlan],
    paths: &'a [PathBuf],
    /// The shard being written (`None` before the first).
    current: Option<(usize, File, u64)>,
    opened: usize,
    done: u64,
    total: u64,
    progress: bool,
    started: Instant,
    last_report: Instant,
}

impl<'a> Sink<'a> {
    fn new(shards: &'a [ShardPlan], paths: &'a [PathBuf], total: u64, progress: bool) -> Self {
        let now = Instant::now();
        Self {
            shards,
            paths,
            current: None,
            opened: 0,
            done: 0,
            total,
            progress,
            started: now,
            last_report: now,
        }
    }

    fn write_round(&mut self, jobs: &[Job], bufs: &[Vec<u8>]) -> Result<()> {
        for (job, buf) in jobs.iter().zip(bufs) {
            while self.current.as_ref().is_none_or(|(s, _, _)| *s != job.shard) {
                self.open_next()?;
            }
            if let Some((s, file, written)) = self.current.as_mut() {
                file.write_all(buf)
                    .with_context(|| format!("writing {}", self.paths[*s].display()))?;
                *written += buf.len() as u64;
            }
            self.done += buf.len() as u64;
            self.report(false);
        }
        Ok(())
    }

    /// Closes the current shard (checking its size) and opens the next one.
    fn open_next(&mut self) -> Result<()> {
        self.close_current()?;
        let s = self.opened;
        let (Some(plan), Some(path)) = (self.shards.get(s), self.paths.get(s)) else {
            bail!("internal error: chunk for shard {s} of {}", self.shards.len());
        };
        let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&plan.header)
            .with_context(|| format!("writing {}", path.display()))?;
        self.current = Some((s, file, 0));
        self.opened += 1;
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some((s, file, written)) = self.current.take() {
            if written != self.shards[s].data_bytes {
                bail!("internal error: shard {s} got {written} of {} bytes", self.shards[s].data_bytes);
            }
            drop(file);
            self.report(true);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        while self.opened < self.shards.len() {
            self.open_next()?;
        }
        self.close_current()
    }

    fn report(&mut self, force: bool) {
        if !self.progress || (!force && self.last_report.elapsed() < Duration::from_secs(2)) {
            return;
        }
        self.last_report = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "write-checkpoint: shard {}/{}, {:.2} / {:.2} GB ({:.1}%), {:.2} GB/s",
            self.opened,
            self.shards.len(),
            self.done as f64 / 1e9,
            self.total as f64 / 1e9,
            100.0 * self.done as f64 / self.total.max(1) as f64,
            self.done as f64 / 1e9 / secs
        );
    }
}

/// Warns about `model-*.safetensors` files in `out` from an earlier write with
/// another shard count (the index does not name them, so loaders ignore them).
fn warn_stale_shards(out: &Path, ours: &[String]) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("model-") && name.ends_with(".safetensors") && !ours.contains(&name) {
            eprintln!("write-checkpoint: warning: {} is not part of this checkpoint", out.join(&name).display());
        }
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream of one chunk.
fn chunk_seed(seed: u64, tensor: usize, chunk: u64) -> u64 {
    mix(mix(seed) ^ mix(((tensor as u64) << 32) ^ chunk ^ 0x5245_4b41))
}

/// SplitMix64's increment: draw `i` (from 1) of the stream seeded `s` is
/// `mix(s + i * GAMMA)`, so draws are independent of each other and the loop
/// below has no dependency chain.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Uniform in `[-1, 1)` from the top 23 bits of `bits`.
fn unit(bits: u32) -> f32 {
    f32::from_bits(0x4000_0000 | (bits >> 9)) - 3.0
}

/// bf16 bits of a finite `x`, rounded to nearest even (as `half::bf16::from_f32`
/// does, without its NaN branch, which keeps the loop vectorisable).
fn bf16_bits(x: f32) -> [u8; 2] {
    let b = x.to_bits();
    (((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16).to_le_bytes()
}

/// Fills `buf` with `len` elements of `init` at `dtype`.
fn fill_chunk(buf: &mut Vec<u8>, init: Init, len: usize, dtype: WeightDtype, seed: u64, amplitude: f32) {
    match dtype {
        WeightDtype::Bf16 => fill_as(buf, init, len, seed, amplitude, bf16_bits),
        WeightDtype::F16 => fill_as(buf, init, len, seed, amplitude, |x| half::f16::from_f32(x).to_le_bytes()),
        WeightDtype::F32 => fill_as(buf, init, len, seed, amplitude, f32::to_le_bytes),
    }
}

fn fill_as<const W: usize>(
    buf: &mut Vec<u8>,
    init: Init,
    len: usize,
    seed: u64,
    amplitude: f32,
    encode: impl Fn(f32) -> [u8; W],
) {
    // Every byte is overwritten below: only a change of length touches the rest.
    buf.resize(len * W, 0);
    match init {
        Init::Ones => {
            let one = encode(1.0);
            for e in buf.chunks_exact_mut(W) {
                e.copy_from_slice(&one);
            }
        }
        Init::Matrix => {
            // Two values per 64-bit draw; an odd last element takes one more draw.
            let draw = |i: u64| mix(seed.wrapping_add(i.wrapping_mul(GAMMA)));
            let mut pairs = buf.chunks_exact_mut(2 * W);
            let mut i = 0u64;
            for pair in &mut pairs {
                i += 1;
                let r = draw(i);
                pair[..W].copy_from_slice(&encode(unit(r as u32) * amplitude));
                pair[W..].copy_from_slice(&encode(unit((r >> 32) as u32) * amplitude));
            }
            let rest = pairs.into_remainder();
            if !rest.is_empty() {
                rest.copy_from_slice(&encode(unit(draw(i + 1) as u32) * amplitude));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_requested_spread_and_are_the_same_at_every_dtype() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let amp = (0.02f64 * 3f64.sqrt()) as f32;
        fill_chunk(&mut a, Init::Matrix, 100_001, WeightDtype::F32, 7, amp);
        fill_chunk(&mut b, Init::Matrix, 100_001, WeightDtype::Bf16, 7, amp);
        let xs: Vec<f32> = a
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 5e-4, "std {}", var.sqrt());
        assert!(xs.iter().all(|x| x.abs() <= amp));
        for (x, h) in xs.iter().zip(b.chunks_exact(2)) {
            assert_eq!(half::bf16::from_f32(*x).to_le_bytes(), [h[0], h[1]]);
        }
    }

    #[test]
    fn shards_split_at_tensor_boundaries() {
        let t = |n: usize| TensorSpec {
            name: format!("t{n}"),
            shape: vec![n],
            init: Init::Ones,
        };
        let tensors = [t(10), t(20), t(30), t(100), t(5)];
        let plan = plan_shards(&tensors, WeightDtype::F32, 120).expect("plan");
        let groups: Vec<&[usize]> = plan.iter().map(|s| s.tensors.as_slice()).collect();
        assert_eq!(groups, [&[0, 1][..], &[2][..], &[3][..], &[4][..]]);
        assert!(plan.iter().all(|s| s.header.len() % 8 == 0));
    }
}
