//! `reka-host`: serve a Spin-style app of wasm components with models behind
//! `wasi:nn`, fetch the default model, or run the engine alone.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use reka_host::runtime_config::{self, ModelSpec};
use reka_host::{fetch, manifest, model, native, nn, server};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "reka-host", version, about = "Serverless wasm inference host for Reka-family models")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

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
        /// Serve one model (a GGUF file or a checkpoint directory) without a runtime config.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Graph name for --model (default: the file or directory name).
        #[arg(long, requires = "model")]
        model_name: Option<String>,
    },
    /// Download, verify and cache the default model.
    Fetch,
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
            let path = fetch::DEFAULT_MODEL.ensure(&fetch::cache_dir())?;
            println!("{}", path.display());
            Ok(())
        }
        Cmd::Run {
            model,
            prompt,
            max_tokens,
        } => {
            let spec = model_spec(model, None)?;
            let loaded = load(&spec)?;
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
            let loaded = load(&spec)?;
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
        Cmd::Serve {
            listen,
            manifest,
            runtime_config,
            model,
            model_name,
        } => {
            let specs = match runtime_config {
                Some(rc) => runtime_config::load(&rc)?,
                None => vec![model_spec(model, model_name)?],
            };
            serve(&listen, &manifest, &specs)
        }
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
            })
        }
        None => Ok(ModelSpec {
            name: name.unwrap_or_else(|| fetch::DEFAULT_MODEL.name.into()),
            path: fetch::DEFAULT_MODEL.ensure(&fetch::cache_dir())?,
        }),
    }
}

fn load(spec: &ModelSpec) -> Result<model::LoadedModel> {
    let started = std::time::Instant::now();
    let m = model::load(&spec.name, &spec.path)?;
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

fn serve(listen: &str, manifest_path: &std::path::Path, specs: &[ModelSpec]) -> Result<()> {
    let app = manifest::App::load(manifest_path)?;
    let mut loaded = Vec::new();
    for spec in specs {
        loaded.push((spec.name.clone(), Arc::new(load(spec)?)));
    }
    let models = nn::Models::new(loaded);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let engine = server::engine()?;
        let server = Arc::new(server::Server::new(&engine, app, models)?);
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
