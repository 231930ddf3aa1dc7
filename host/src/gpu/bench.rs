//! `reka-host gpu-bench`: decode speed of [`GpuLlama`] at several batch sizes
//! against the memory-bandwidth limit (weight bytes read per step over the
//! H100's 3.35 TB/s), and an optional check of the GPU decoder against the CPU
//! one on a small random checkpoint.

use super::{probe, Gpu, GpuLlama, GpuStep};
use reka_kernels::cuda::KvType;
use crate::model;
use crate::{checkpoint_writer, presets};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// HBM3 bandwidth of an H100 SXM, bytes per second.
pub const H100_BYTES_PER_S: f64 = 3.35e12;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// A Hugging Face checkpoint directory.
    pub model: PathBuf,
    /// Concurrent streams per measurement.
    pub batch: Vec<usize>,
    /// Decode steps timed per measurement.
    pub tokens: usize,
    /// Prompt tokens per stream before the timed steps.
    pub prompt: usize,
    /// When above 0, batch 1 is also measured after a prompt this long, with
    /// the attention's position splits on and off.
    pub long_context: usize,
    /// Compare the GPU decoder with the CPU one on `reka-tiny` first.
    pub verify: bool,
    /// More models to compare (GGUF files or checkpoint directories).
    pub verify_models: Vec<PathBuf>,
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// Runs the bench and prints its table on stdout. `spec.model` is a
/// checkpoint directory (bytes per token from its config, as bf16) or a GGUF
/// file (bytes per token as the GPU holds its weights).
pub fn run(spec: &BenchSpec) -> Result<()> {
    let dir_bytes = if spec.model.is_dir() {
        let hf = presets::read_dir_config(&spec.model)?;
        Some(presets::decode_bytes_per_token(&hf, presets::WeightDtype::Bf16)?)
    } else {
        None
    };
    if let Some(b) = dir_bytes {
        println!("weights read per decode step: {:.3} GB (bf16); bandwidth limit at 3.35 TB/s: {:.1} steps/s", b as f64 / 1e9, H100_BYTES_PER_S / b as f64);
    }
    let Some(gpu) = probe() else {
        println!("gpu-bench: no CUDA device: nothing measured (the CPU engine is measured by `reka-host bench`)");
        return Ok(());
    };
    println!("device: {} ({})", gpu.name(), gpu.arch());
    if spec.verify {
        verify(&gpu, &spec.verify_models)?;
    }
    let started = Instant::now();
    let m = match dir_bytes {
        Some(_) => GpuLlama::load_on(gpu, &spec.model)?,
        None => {
            let cpu = model::load("bench", &spec.model)?;
            GpuLlama::load_like(gpu, &spec.model, cpu.decoder.config())?
        }
    };
    println!("loaded {} in {:.1} s", spec.model.display(), started.elapsed().as_secs_f64());
    let bytes = dir_bytes.unwrap_or_else(|| m.decode_bytes_per_token() as u64);
    if dir_bytes.is_none() {
        println!("weights read per decode step: {:.3} GB (as held on the GPU); bandwidth limit at 3.35 TB/s: {:.1} steps/s", bytes as f64 / 1e9, H100_BYTES_PER_S / bytes as f64);
    }
    let limit = H100_BYTES_PER_S / bytes as f64;
    println!();
    println!("| batch | CUDA graphs | tokens/s (all) | tokens/s (per stream) | ms/step | weight GB/token | limit tokens/s @3.35TB/s | ratio |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for &b in &spec.batch {
        for graphs in [false, true] {
            m.set_graphs(graphs);
            let (step_s, total) = measure(&m, b, spec.prompt, spec.tokens)?;
            // A failed capture switches graphs off: say what really ran.
            let used = if graphs && !m.graphs() { "failed, eager" } else if graphs { "on" } else { "off" };
            let per = 1.0 / step_s;
            let all_limit = limit * b as f64;
            println!(
                "| {b} | {used} | {:.1} | {per:.1} | {:.2} | {:.3} | {all_limit:.1} | {:.1}% |",
                per * b as f64,
                step_s * 1e3,
                bytes as f64 / 1e9,
                100.0 * per * b as f64 / all_limit
            );
            tracing::debug!(batch = b, total_s = total, "measured");
        }
    }
    if spec.long_context > 0 {
        long_context(&m, spec.long_context, spec.tokens, limit)?;
    }
    Ok(())
}

/// Batch 1 decoding after a `prompt`-token prompt, CUDA graphs on, with the
/// attention split over blocks (flash-decoding) and with one block per
/// (row, kv head), side by side; the ratio is to the weights-only limit, so
/// the cache reads show as a loss.
fn long_context(m: &GpuLlama, prompt: usize, tokens: usize, limit: f64) -> Result<()> {
    println!();
    println!("batch 1 after a {prompt}-token prompt (CUDA graphs on); KV cache read per step: {:.1} MB", (m.cache_bytes_per_position() * prompt) as f64 / 1e6);
    println!();
    println!("| attention | tokens/s | ms/step | ratio to the weights-only limit |");
    println!("|---|---:|---:|---:|");
    m.set_graphs(true);
    for (split, name) in [(true, "split (flash-decoding)"), (false, "one block per (row, kv head)")] {
        m.set_split_attention(split);
        let (step_s, _) = measure(m, 1, prompt, tokens)?;
        println!("| {name} | {:.1} | {:.2} | {:.1}% |", 1.0 / step_s, step_s * 1e3, 100.0 / step_s / limit);
    }
    m.set_split_attention(true);
    Ok(())
}

/// Prefills `batch` sessions with `prompt` tokens, then times `tokens` greedy
/// decode steps of all of them at once. Returns (seconds per step, total).
fn measure(m: &GpuLlama, batch: usize, prompt: usize, tokens: usize) -> Result<(f64, f64)> {
    if batch == 0 || tokens == 0 {
        bail!("batch and -n must be positive");
    }
    let vocab = m.config().vocab_size as u32;
    let mut caches = (0..batch).map(|_| m.new_cache(prompt.max(1) + tokens + 4)).collect::<Result<Vec<_>>>()?;
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|b| (0..prompt.max(1)).map(|i| ((i * 7919 + b * 104_729 + 13) as u32) % vocab).collect())
        .collect();
    let mut steps: Vec<GpuStep> = caches.iter_mut().zip(&prompts).map(|(cache, ids)| GpuStep::tokens(ids, cache)).collect();
    let mut next: Vec<u32> = m.forward_batch(&mut steps)?.iter().map(|l| argmax(l)).collect();
    drop(steps);
    let mut step = |next: &mut Vec<u32>| -> Result<()> {
        let ids: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
        let mut steps: Vec<GpuStep> = caches.iter_mut().zip(&ids).map(|(cache, ids)| GpuStep::tokens(ids, cache)).collect();
        *next = m.forward_batch(&mut steps)?.iter().map(|l| argmax(l)).collect();
        Ok(())
    };
    for _ in 0..2 {
        step(&mut next)?; // warm-up (allocator pools, JIT caches)
    }
    m.gpu().synchronize()?;
    let t0 = Instant::now();
    for _ in 2..tokens {
        step(&mut next)?;
    }
    let total = t0.elapsed().as_secs_f64();
    Ok((total / tokens.saturating_sub(2).max(1) as f64, total))
}

/// Writes `reka-tiny` with random bf16 weights to a temporary directory, runs a
/// prompt and greedy decode steps on the CPU decoder and on the GPU decoder,
/// and compares the logits (bf16 KV cache on the GPU, f32 on the CPU); then the
/// same for each model in `more` (GGUF files or checkpoint directories, e.g.
/// SmolLM2's Q4_1 file, which the GPU computes in the CPU build's numerics).
pub fn verify(gpu: &Gpu, more: &[PathBuf]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("reka-gpu-verify-{}", std::process::id()));
    let config = presets::config_json("reka-tiny")?;
    checkpoint_writer::write_checkpoint(&config, &dir, &checkpoint_writer::Options::default())?;
    // The prompt eight times over (~170 positions by the last step), so the
    // attention's splits (flash-decoding, at least 64 positions each) all
    // carry work and their merge is checked.
    let result = compare(gpu, &dir, model::WeightDtype::Bf16, 2e-2, 8);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    for path in more {
        // GGUF: the GPU follows the CPU build operation for operation (its block
        // kernels' order, candle's RMSNorm, its AVX2 attention, expf::exp), so
        // the logits must be the same bits. Without AVX2 the CPU's attention
        // takes another path;
        // then only closeness is asked: both quantize activations to 8 bits in
        // every layer, and a different summation order moves one across a
        // rounding boundary now and then, which over 30 layers adds up to
        // ~5 % of the largest logit on SmolLM2 (the CPU build is as far from
        // llama.cpp); a wrong kernel is off by whole logits.
        let tol = if reka_kernels::cpu::Isa::Avx2.supported() { 0.0 } else { 1e-1 };
        compare(gpu, path, model::WeightDtype::Auto, tol, 1)?;
    }
    Ok(())
}

/// The prompt of the comparison: a ChatML turn, tokenised by the model's own
/// tokenizer (special tokens parsed where the vocabulary has them).
const VERIFY_PROMPT: &str = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

/// Prompt (`VERIFY_PROMPT` `repeat` times) plus 11 greedy steps on both
/// decoders; fails when a step's logits differ by more than `tol` of the
/// largest logit (`tol` 0: when they are not the same bits).
fn compare(gpu: &Gpu, path: &Path, dtype: model::WeightDtype, tol: f32, repeat: usize) -> Result<()> {
    let cpu = model::load_as("verify", path, dtype)?;
    let prompt = cpu.tokenizer.encode(&VERIFY_PROMPT.repeat(repeat), true);
    let gpu = GpuLlama::load_like(gpu.clone(), path, cpu.decoder.config())?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut worst = 0f32;
    // Eagerly, with graphs, and (bf16 cache: the f16 path never splits) with
    // graphs and the attention unsplit.
    let modes: &[(bool, bool)] = if gpu.kv_type() == KvType::Bf16 { &[(false, true), (true, true), (true, false)] } else { &[(false, true), (true, true)] };
    for &(graphs, split) in modes {
        gpu.set_graphs(graphs);
        gpu.set_split_attention(split);
        let mut cc = cpu.decoder.new_cache();
        let mut gc = gpu.new_cache(8)?; // small on purpose: the cache grows on the way
        let mut ids = prompt.clone();
        for step in 0..12 {
            let want = cpu.decoder.forward(&ids, &mut cc)?.to_vec1::<f32>()?;
            let got = gpu.forward(&ids, &mut gc)?;
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            worst = worst.max(diff / scale.max(1e-6));
            let (a, b) = (argmax(&want), argmax(&got));
            let mode = match (gpu.graphs(), split) {
                (false, _) => "eager",
                (true, true) => "graphs",
                (true, false) => "graphs, attention unsplit",
            };
            println!("verify {name} ({mode}) step {step}: max |Δlogit| {diff:.2e} (max |logit| {scale:.2e}), argmax cpu {a} gpu {b}");
            let off = if tol == 0.0 { want.iter().zip(&got).any(|(a, b)| a.to_bits() != b.to_bits()) } else { diff > tol * scale + 1e-4 };
            if off {
                bail!("{name} ({mode}): GPU logits differ from the CPU's at step {step}: max |Δ| {diff} vs max |logit| {scale}");
            }
            ids = vec![a];
        }
    }
    let how = if tol == 0.0 { "bit for bit" } else { "within tolerance" };
    println!("verify: GPU decoder matches the CPU decoder on {name}, {how} (worst relative |Δ| {worst:.2e}, KV cache {:?}, prompt {} tokens)", gpu.kv_type(), prompt.len());
    Ok(())
}
