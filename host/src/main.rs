//! `reka-host`: serve a Spin-style app of wasm components with models behind
//! `wasi:nn`, fetch the default model, or run the engine alone.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use reka_host::runtime_config::{self, EmbedSpec, ModelSpec, RuntimeConfig};
use reka_host::{checkpoint_writer, fetch, manifest, model, native, nn, presets, server};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "reka-host", version, about = "Serverless wasm inference host for Reka-family models")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once per run: the size of its biggest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Serve the app in spin.toml over HTTP.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "REKA_LISTEN")]
        listen: String,
        /// The Spin manifest (v2).
        #[arg(long, default_value = "spin.toml")]
        manifest: PathBuf,
        /// Runtime config naming the models to load.
        #[arg(long, conflicts_with = "model")]
        runtime_config: Option<PathBuf>,
        /// Serve one model (a GGUF file, a checkpoint directory or a multimodal
        /// model's .json config) without a runtime config.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Graph name for --model (default: the file or directory name).
        #[arg(long, requires = "model")]
        model_name: Option<String>,
        /// The vision projector GGUF beside a text GGUF --model, as llama-server
        /// takes it (llama.cpp's `yasa2` mmproj of Reka Edge).
        #[arg(long, requires = "model")]
        mmproj: Option<PathBuf>,
        /// Where the app keeps its state: the `default` key-value store
        /// (`sqlite_key_value.db`). Default: `.spin` beside the manifest, as Spin.
        #[arg(long, env = "REKA_STATE_DIR")]
        state_dir: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        http: reka_host::http_args::HttpArgs,
    },
    /// Download, verify and cache the default models (text and multimodal).
    Fetch,
    /// Time to first token of media requests to a multimodal model, and its
    /// encoders alone (one table).
    BenchMedia {
        /// The multimodal model's .json config (default: smollm2-omni, fetched).
        #[arg(long)]
        model: Option<PathBuf>,
        /// The Spin manifest of the app to measure.
        #[arg(long, default_value = "spin.toml")]
        manifest: PathBuf,
        /// Requests per row (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
    /// Reka Edge's vision tower alone (ConvNeXt V2, pooling, projector; random
    /// weights of a preset's or config's shape): ms per tile and per video.
    BenchTower {
        /// Presets or config.json files (default: the tiny test tower and the
        /// full-size reka-edge one).
        #[arg(long, value_delimiter = ',', default_value = "tests/fixtures/reka_edge/config.json,reka-edge")]
        towers: Vec<String>,
        /// Runs per row (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Every quantized matmul kernel in every variant this CPU runs, side by
    /// side: ms per call and multiply-adds per second at 1, 4 and 16 rows;
    /// then the per-token top-k and log-sum-exp over a vocabulary.
    BenchKernels,
    /// Measure the engine alone, the full HTTP path and llama.cpp side by side.
    Bench {
        /// A GGUF file or checkpoint directory (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// The Spin manifest of the app to measure.
        #[arg(long, default_value = "spin.toml")]
        manifest: PathBuf,
        #[arg(long, default_value = "Once upon a time")]
        prompt: String,
        /// Tokens per stream.
        #[arg(long, short = 'n', default_value_t = 64)]
        max_tokens: usize,
        /// Concurrent streams to measure, comma-separated.
        #[arg(long, default_value = "1,4,16", value_delimiter = ',')]
        concurrency: Vec<usize>,
        /// Requests for the overhead percentiles.
        #[arg(long, default_value_t = 500)]
        overhead_requests: usize,
        /// Python with llama-cpp-python installed, for the llama.cpp column.
        #[arg(long)]
        llama_python: Option<PathBuf>,
    },
    /// Greedy-generate with the engine alone (no HTTP, no wasm) and report speed.
    Run {
        /// A GGUF file or checkpoint directory (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Raw prompt, no chat template.
        #[arg(long, default_value = "Once upon a time")]
        prompt: String,
        /// Tokens to generate.
        #[arg(long, short = 'n', default_value_t = 32)]
        max_tokens: usize,
    },
    /// Soak a running server: concurrent streaming clients with random
    /// disconnects and bad requests for a set time; fails if an answer was
    /// malformed, KV memory is still held or resident memory did not come back.
    Soak(reka_host::soak::SoakArgs),
    /// Write a Hugging Face checkpoint directory with random weights for a size preset.
    WriteCheckpoint {
        /// A preset (reka-tiny, reka-edge, reka-flash, reka-core) or a config.json file.
        #[arg(long)]
        preset: String,
        /// The directory to write (created if missing; files in it are overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Weight type: bf16, f16 or f32.
        #[arg(long, default_value = "bf16")]
        dtype: presets::WeightDtype,
        /// Shard size in GB (10^9 bytes); shards end at tensor boundaries.
        #[arg(long, default_value_t = 4.0)]
        shard_gb: f64,
    },
    /// Decode speed of the CUDA decoder against the memory-bandwidth limit (GPU builds).
    #[cfg(feature = "cuda")]
    GpuBench {
        /// A Hugging Face checkpoint directory (bf16), e.g. from write-checkpoint, or a GGUF file.
        #[arg(long)]
        model: PathBuf,
        /// Concurrent streams to measure, comma-separated.
        #[arg(long, default_value = "1,32", value_delimiter = ',')]
        batch: Vec<usize>,
        /// Decode steps per measurement.
        #[arg(long, short = 'n', default_value_t = 64)]
        max_tokens: usize,
        /// Prompt tokens per stream before the timed steps.
        #[arg(long, default_value_t = 16)]
        prompt_tokens: usize,
        /// Then also batch 1 after a prompt of this many tokens, with the
        /// attention split over blocks (flash-decoding) and without (0: skip).
        #[arg(long, default_value_t = 0)]
        long_context: usize,
        /// First compare the GPU decoder with the CPU one on a random reka-tiny.
        #[arg(long)]
        verify: bool,
        /// With --verify, also compare on this model (a GGUF file or a checkpoint directory; repeatable).
        #[arg(long)]
        verify_model: Vec<PathBuf>,
    },
}

/// The engine's batching and memory limits, and the weight type.
#[derive(clap::Args)]
struct EngineArgs {
    /// Memory for all sessions' KV caches, per model, in MiB.
    #[arg(long, default_value_t = 4096)]
    kv_budget_mb: usize,
    /// New requests that may wait for KV memory at once; more get 429.
    #[arg(long, default_value_t = 64)]
    max_waiting: usize,
    /// How long a request may wait for KV memory before it gets 503, in ms.
    #[arg(long, default_value_t = 30_000)]
    admission_timeout_ms: u64,
    /// Tokens per engine step: every running stream's next token plus prompt chunks.
    #[arg(long, default_value_t = 128)]
    step_tokens: usize,
    /// Prefix caching: reuse the KV of earlier prompts that start the same way
    /// (a chat's next turn prefills only what is new): on or off.
    #[arg(long, default_value = "on", env = "REKA_PREFIX_CACHE", value_parser = parse_switch, action = clap::ArgAction::Set)]
    prefix_cache: bool,
    /// Most memory the prefix cache may hold, per model, in MiB (default: all
    /// of --kv-budget-mb that live sessions leave; they always come first).
    #[arg(long, env = "REKA_PREFIX_CACHE_MB")]
    prefix_cache_mb: Option<usize>,
    /// Keep a checkpoint directory's weights as: auto (as stored), f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    dtype: model::WeightDtype,
    /// Where decoders run: auto (the GPU in a GPU build that finds one, else the CPU), cpu, cuda.
    #[arg(long, default_value = "auto")]
    device: reka_host::device::DeviceChoice,
}

impl EngineArgs {
    fn limits(&self) -> nn::scheduler::Limits {
        nn::scheduler::Limits {
            kv_budget_bytes: self.kv_budget_mb << 20,
            max_waiting: self.max_waiting,
            admission_timeout: std::time::Duration::from_millis(self.admission_timeout_ms),
            step_tokens: self.step_tokens,
            prefix_cache_bytes: match (self.prefix_cache, self.prefix_cache_mb) {
                (false, _) => 0,
                (true, None) => usize::MAX,
                (true, Some(mb)) => mb.saturating_mul(1 << 20),
            },
        }
    }
}

/// A switch: on/off, true/false, yes/no, 1/0.
fn parse_switch(s: &str) -> std::result::Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not on or off")),
    }
}

fn main() -> Result<()> {
    // candle asks for the thread count on every CPU op; without this variable it
    // re-reads /proc/cpuinfo each time (a few percent of decode time).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime_wasi_nn=warn,cranelift=warn,wasmtime=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Fetch => {
            for m in fetch::ALL {
                let path = m.ensure(&fetch::cache_dir())?;
                println!("{}", path.display());
            }
            println!("{}", reka_host::embed::fetch::ensure(&fetch::cache_dir())?.display());
            println!("{}", fetch::ensure_multimodal(&fetch::cache_dir())?.display());
            Ok(())
        }
        Cmd::Run {
            model,
            prompt,
            max_tokens,
        } => {
            let spec = model_spec(model, None)?;
            let loaded = load(&spec, model::WeightDtype::Auto)?;
            let r = native::greedy(&loaded, &prompt, max_tokens)?;
            println!("{}", r.text);
            eprintln!(
                "prompt {} tokens, prefill {:.1} ms; {} tokens, decode {:.2} tokens/s",
                r.prompt_ids.len(),
                r.prefill.as_secs_f64() * 1e3,
                r.ids.len(),
                r.decode_tokens_per_s()
            );
            eprintln!("ids: {:?}", r.ids);
            eprintln!("top logits after the prompt: {:?}", r.first_top);
            Ok(())
        }
        Cmd::Bench {
            model,
            manifest,
            prompt,
            max_tokens,
            concurrency,
            overhead_requests,
            llama_python,
        } => {
            let spec = model_spec(model, None)?;
            let loaded = load(&spec, model::WeightDtype::Auto)?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            reka_host::bench::run(
                loaded,
                &reka_host::bench::BenchSpec {
                    model_name: spec.name,
                    model_path: spec.path,
                    manifest,
                    prompt,
                    max_tokens,
                    concurrency,
                    overhead_requests,
                    llama_python,
                    threads,
                },
            )
        }
        Cmd::WriteCheckpoint {
            preset,
            out,
            seed,
            dtype,
            shard_gb,
        } => write_checkpoint(&preset, &out, seed, dtype, shard_gb),
        Cmd::Soak(args) => reka_host::soak::run(&args),
        Cmd::BenchKernels => reka_host::bench_kernels::run(),
        Cmd::BenchTower { towers, repeats } => reka_host::bench_tower::run(&towers, repeats),
        Cmd::BenchMedia { model, manifest, repeats } => {
            let spec = match model {
                Some(p) => model_spec(Some(p), None)?,
                None => ModelSpec { name: fetch::MULTIMODAL_NAME.into(), path: fetch::ensure_multimodal(&fetch::cache_dir())?, mmproj: None },
            };
            let loaded = load(&spec, model::WeightDtype::Auto)?;
            reka_host::bench_media::run(loaded, &reka_host::bench_media::MediaBenchSpec { manifest, model_name: spec.name, repeats })
        }
        Cmd::Serve {
            listen,
            manifest,
            runtime_config,
            model,
            model_name,
            mmproj,
            state_dir,
            engine,
            http,
        } => {
            let config = match (runtime_config, model) {
                (Some(rc), _) => runtime_config::load(&rc)?,
                (None, Some(m)) => RuntimeConfig { models: vec![ModelSpec { mmproj, ..model_spec(Some(m), model_name)? }], aliases: Vec::new(), embedding: None, key_value: Vec::new() },
                // The defaults: the text model and the multimodal one.
                (None, None) => RuntimeConfig {
                    models: vec![
                        model_spec(None, model_name)?,
                        ModelSpec { name: fetch::MULTIMODAL_NAME.into(), path: fetch::ensure_multimodal(&fetch::cache_dir())?, mmproj: None },
                    ],
                    aliases: Vec::new(),
                    embedding: None,
                    key_value: Vec::new(),
                },
            };
            serve(&listen, &manifest, state_dir, &config, &engine, &http)
        }
        #[cfg(feature = "cuda")]
        Cmd::GpuBench {
            model,
            batch,
            max_tokens,
            prompt_tokens,
            long_context,
            verify,
            verify_model,
        } => reka_host::gpu::bench::run(&reka_host::gpu::bench::BenchSpec {
            model,
            batch,
            tokens: max_tokens,
            prompt: prompt_tokens,
            long_context,
            verify,
            verify_models: verify_model,
        }),
    }
}

/// The model to use: `path` under `name` (or its file stem), else the default model.
fn model_spec(path: Option<PathBuf>, name: Option<String>) -> Result<ModelSpec> {
    match path {
        Some(path) => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_lowercase())
                .unwrap_or_else(|| "model".into());
            Ok(ModelSpec {
                name: name.unwrap_or(stem),
                path,
                mmproj: None,
            })
        }
        None => Ok(ModelSpec {
            name: name.unwrap_or_else(|| fetch::DEFAULT_MODEL.name.into()),
            path: fetch::DEFAULT_MODEL.ensure(&fetch::cache_dir())?,
            mmproj: None,
        }),
    }
}

fn write_checkpoint(preset: &str, out: &std::path::Path, seed: u64, dtype: presets::WeightDtype, shard_gb: f64) -> Result<()> {
    if !(shard_gb.is_finite() && shard_gb > 0.0) {
        anyhow::bail!("--shard-gb must be a positive number of GB, not {shard_gb}");
    }
    let config = presets::resolve(preset)?;
    let params: u64 = presets::tensors(&config)?.iter().map(presets::TensorSpec::numel).sum();
    eprintln!(
        "write-checkpoint: {preset}: {:.3}e9 parameters, {:.2} GB at {dtype}, into {}",
        params as f64 / 1e9,
        (params * dtype.size()) as f64 / 1e9,
        out.display()
    );
    let opts = checkpoint_writer::Options {
        seed,
        dtype,
        shard_bytes: (shard_gb * 1e9) as u64,
        progress: true,
    };
    let w = checkpoint_writer::write_checkpoint(&config, out, &opts)?;
    eprintln!(
        "write-checkpoint: wrote {} tensors in {} shards, {:.2} GB in {:.1} s ({:.2} GB/s)",
        w.tensors,
        w.shards.len(),
        w.data_bytes as f64 / 1e9,
        w.elapsed.as_secs_f64(),
        w.gb_per_s()
    );
    println!("{}", out.display());
    Ok(())
}

fn load(spec: &ModelSpec, dtype: model::WeightDtype) -> Result<model::LoadedModel> {
    let started = std::time::Instant::now();
    let m = match &spec.mmproj {
        Some(mmproj) => model::yasa2::load_gguf_pair(&spec.name, &spec.path, mmproj)?,
        None => model::load_as(&spec.name, &spec.path, dtype)?,
    };
    let c = m.decoder.config();
    tracing::info!(
        model = %spec.name,
        path = %spec.path.display(),
        layers = c.num_layers,
        hidden = c.hidden_size,
        vocab = c.vocab_size,
        context = c.context_length,
        ms = started.elapsed().as_millis() as u64,
        "model loaded"
    );
    Ok(m)
}

/// The embedding models to serve: those listed, else the default one (when
/// it is cached or can be fetched; without it the server still serves).
fn embedders(listed: Option<&[EmbedSpec]>) -> Result<Vec<(String, Arc<reka_host::embed::Embedder>)>> {
    let specs = match listed {
        Some(l) => l.to_vec(),
        None => match reka_host::embed::fetch::ensure(&fetch::cache_dir()) {
            Ok(path) => vec![EmbedSpec { name: DEFAULT_EMBEDDING_MODEL.into(), path }],
            Err(e) => {
                tracing::warn!("no embedding model: fetching {DEFAULT_EMBEDDING_MODEL} failed: {e:#}");
                Vec::new()
            }
        },
    };
    specs
        .into_iter()
        .map(|s| {
            let e = reka_host::embed::Embedder::load(&s.path).with_context(|| format!("loading embedding model {} from {}", s.name, s.path.display()))?;
            tracing::info!(model = %s.name, dim = e.dim(), max_tokens = e.max_tokens(), "embedding engine ready");
            Ok((s.name, Arc::new(e)))
        })
        .collect()
}

/// Spin's name for its embedding model, which the default one is.
const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

fn serve(
    listen: &str,
    manifest_path: &std::path::Path,
    state_dir: Option<PathBuf>,
    config: &RuntimeConfig,
    engine: &EngineArgs,
    http: &reka_host::http_args::HttpArgs,
) -> Result<()> {
    let policy = http.policy();
    let mut app = manifest::App::load(manifest_path)?;
    if let Some(dir) = state_dir {
        app.state_dir = dir;
    }
    app.key_value = config.key_value.clone();
    let placer = reka_host::device::Placer::new(engine.device)?;
    let mut loaded = Vec::new();
    for spec in &config.models {
        let mut m = load(spec, engine.dtype)?;
        placer.place(&mut m)?;
        loaded.push((spec.name.clone(), Arc::new(m)));
    }
    tracing::info!(device = if placer.on_gpu() { "cuda" } else { "cpu" }, "engines placed");
    let models = nn::Models::with_limits(loaded, engine.limits())
        .context("starting the engine threads")?
        .with_aliases(&config.aliases)
        .map_err(anyhow::Error::msg)?
        .with_embedders(embedders(config.embedding.as_deref())?)
        .context("starting the embedding engines")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let engine = server::engine()?;
        let server = Arc::new(server::Server::with_policy(&engine, app, models, policy)?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        println!("listening on http://{addr}");
        server.serve(listener, shutdown_signal()).await
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received");
}
