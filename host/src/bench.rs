//! `reka-host bench`: one table, measured side by side in one run on the same
//! model, prompt and machine: the engine alone, the full HTTP → wasm → wasi:nn
//! path at several concurrencies, llama.cpp when a Python with `llama_cpp` is
//! given, the per-request overhead of the wasm path, and peak memory.

use crate::model::{LoadedModel, Step};
use crate::{manifest, native, nn, server};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
pub struct BenchSpec {
    pub model_name: String,
    pub model_path: PathBuf,
    pub manifest: PathBuf,
    pub prompt: String,
    pub max_tokens: usize,
    pub concurrency: Vec<usize>,
    pub overhead_requests: usize,
    /// A Python interpreter with `llama_cpp` (llama-cpp-python) for the llama.cpp column.
    pub llama_python: Option<PathBuf>,
    pub threads: usize,
}

/// One row of the table.
struct Row {
    path: String,
    streams: usize,
    ttft_ms: f64,
    per_stream: f64,
    aggregate: f64,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The engine alone at `k` streams: all streams' prompts are prefilled in one
/// batched step (its time is every stream's time to first token, as when `k`
/// requests reach the engine thread together), then all decode in lockstep,
/// one batched forward pass per token (as the wasi:nn engine thread batches
/// them), greedy.
fn native_rows(model: &Arc<LoadedModel>, spec: &BenchSpec) -> Result<Vec<Row>> {
    let mut prompt = Vec::new();
    if model.info.add_bos {
        prompt.extend(model.info.bos_token_id);
    }
    prompt.extend(model.tokenizer.encode(&spec.prompt, false));
    let mut rows = Vec::new();
    for &k in &spec.concurrency {
        let mut caches: Vec<_> = (0..k).map(|_| model.decoder.new_cache()).collect();
        let t0 = Instant::now();
        let mut steps: Vec<Step<'_>> = caches.iter_mut().map(|cache| Step::tokens(&prompt, cache)).collect();
        let mut next: Vec<u32> = model.decoder.forward_batch(&mut steps)?.iter().map(|l| native::argmax(l)).collect();
        let ttft = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        for _ in 1..spec.max_tokens {
            let ids: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let mut steps: Vec<Step<'_>> = caches.iter_mut().zip(&ids).map(|(cache, ids)| Step::tokens(ids, cache)).collect();
            next = model.decoder.forward_batch(&mut steps)?.iter().map(|l| native::argmax(l)).collect();
        }
        let per_stream = (spec.max_tokens - 1) as f64 / t1.elapsed().as_secs_f64();
        rows.push(Row {
            path: "native engine (batched)".into(),
            streams: k,
            ttft_ms: ttft,
            per_stream,
            aggregate: per_stream * k as f64,
        });
    }
    Ok(rows)
}

/// Timings of one streamed completion: time to the first event, and the times of all.
fn stream_once(addr: &str, prompt: &str, max_tokens: usize) -> Result<(Duration, Vec<Instant>)> {
    let body = serde_json::json!({
        "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": true
    })
    .to_string();
    let mut s = TcpStream::connect(addr)?;
    let t0 = Instant::now();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut times = Vec::new();
    for line in BufReader::new(s).lines() {
        let line = line?;
        if line.starts_with("data: {") {
            times.push(Instant::now());
        }
    }
    let first = times.first().context("the stream carried no events")?;
    Ok((*first - t0, times))
}

fn http_rows(addr: &str, spec: &BenchSpec) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &k in &spec.concurrency {
        let started = Instant::now();
        let handles: Vec<_> = (0..k)
            .map(|_| {
                let (a, p, n) = (addr.to_string(), spec.prompt.clone(), spec.max_tokens);
                std::thread::spawn(move || stream_once(&a, &p, n))
            })
            .collect();
        let mut runs = Vec::new();
        for h in handles {
            runs.push(h.join().map_err(|_| anyhow::anyhow!("bench thread panicked"))??);
        }
        let wall = started.elapsed().as_secs_f64();
        let events: usize = runs.iter().map(|r| r.1.len()).sum();
        let rates: Vec<f64> = runs
            .iter()
            .map(|(_, t)| match (t.first(), t.last()) {
                (Some(a), Some(b)) if t.len() > 1 => (t.len() - 1) as f64 / (*b - *a).as_secs_f64().max(1e-9),
                _ => 0.0,
            })
            .collect();
        rows.push(Row {
            path: "HTTP → wasm → wasi:nn".into(),
            streams: k,
            ttft_ms: mean(&runs.iter().map(|r| r.0.as_secs_f64() * 1e3).collect::<Vec<_>>()),
            per_stream: mean(&rates),
            aggregate: events as f64 / wall,
        });
    }
    Ok(rows)
}

/// p50 and p99 of `GET /health` through the wasm path (instantiation to last byte).
fn overhead(addr: &str, n: usize) -> Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let mut s = TcpStream::connect(addr)?;
        let t0 = Instant::now();
        write!(s, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status)?;
        if !status.contains(" 200 ") {
            bail!("/health answered {status:?}");
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if i >= 10 {
            lat.push(ms); // the first ten warm the caches up
        }
    }
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Ok((at(0.5), at(0.99)))
}

/// llama.cpp's own batched decoding through llama-cpp-python's low-level API
/// (what llama-server's parallel slots do): `streams` sequences prefilled in one
/// batch, then one `llama_decode` of `streams` tokens per step, greedy (argmax of
/// the logits in numpy, as cheap as our host's top-1).
const LLAMA_CPP_SCRIPT: &str = r#"
import json, sys, time
import numpy as np
import llama_cpp as L
path, prompt, n, threads, streams = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
L.llama_backend_init()
model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
cp = L.llama_context_default_params()
cp.n_ctx = 512 * streams; cp.n_batch = 512 * streams; cp.n_ubatch = 512; cp.n_seq_max = streams
cp.n_threads = threads; cp.n_threads_batch = threads; cp.no_perf = True
ctx = L.llama_init_from_model(model, cp)
vocab = L.llama_model_get_vocab(model)
nv = L.llama_vocab_n_tokens(vocab)
buf = (L.llama_token * 512)()
k = L.llama_tokenize(vocab, prompt.encode(), len(prompt.encode()), buf, 512, False, True)
ids = list(buf[:k])
batch = L.llama_batch_init(max(len(ids) * streams, streams), 0, streams)
def put(i, tok, pos, seq, want):
    batch.token[i] = tok; batch.pos[i] = pos; batch.n_seq_id[i] = 1; batch.seq_id[i][0] = seq; batch.logits[i] = want
def argmax(row):
    return int(np.argmax(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, row), shape=(nv,))))
t0 = time.perf_counter()
m = 0
for s in range(streams):
    for j, t in enumerate(ids):
        put(m, t, j, s, j == len(ids) - 1); m += 1
batch.n_tokens = m
assert L.llama_decode(ctx, batch) == 0
last = [argmax((s + 1) * len(ids) - 1) for s in range(streams)]
ttft = (time.perf_counter() - t0) * 1e3 / streams
t1 = time.perf_counter()
for step in range(1, n):
    for s in range(streams):
        put(s, last[s], len(ids) + step - 1, s, True)
    batch.n_tokens = streams
    assert L.llama_decode(ctx, batch) == 0
    last = [argmax(s) for s in range(streams)]
print(json.dumps({"ttft_ms": ttft, "decode": (n - 1) / (time.perf_counter() - t1)}))
"#;

fn llama_cpp_row(python: &Path, spec: &BenchSpec, streams: usize) -> Result<Row> {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(LLAMA_CPP_SCRIPT)
        .arg(&spec.model_path)
        .arg(&spec.prompt)
        .arg(spec.max_tokens.to_string())
        .arg(spec.threads.to_string())
        .arg(streams.to_string())
        .output()
        .context("running llama-cpp-python")?;
    if !out.status.success() {
        bail!("llama-cpp-python failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let decode = v["decode"].as_f64().unwrap_or(0.0);
    Ok(Row {
        path: "llama.cpp (batched, llama-cpp-python)".into(),
        streams,
        ttft_ms: v["ttft_ms"].as_f64().unwrap_or(0.0),
        per_stream: decode,
        aggregate: decode * streams as f64,
    })
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs every measurement and prints the table.
/// The app served in this process on a loopback port, for the benches.
pub struct LocalServer {
    pub addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: std::thread::JoinHandle<Result<()>>,
}

impl LocalServer {
    /// Serves `app` with `models` on a free loopback port, on its own runtime.
    pub fn start(app: manifest::App, models: nn::Models) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let serving = std::thread::spawn(move || -> Result<()> {
            rt.block_on(async move {
                let engine = server::engine()?;
                let srv = Arc::new(server::Server::new(&engine, app, models)?);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?.to_string())?;
                srv.serve(listener, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv().context("the bench server did not start")?;
        Ok(Self { addr, stop, serving })
    }

    /// Stops serving and waits for the server thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.serving.join();
    }
}

/// The CPU's vector extensions, the kernel level in use and which kernels the
/// model's linears run (with how many linears each).
pub fn kernel_line(model: &LoadedModel) -> String {
    let used: Vec<String> = model.decoder.kernels().into_iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    format!(
        "CPU: {} (kernels: {}, REKA_CPU_ISA cap {}); linears: {}",
        reka_kernels::cpu::extensions().join(" "),
        reka_kernels::cpu::selected(),
        std::env::var("REKA_CPU_ISA").unwrap_or_else(|_| "none".into()),
        used.join(", ")
    )
}

pub fn run(model: LoadedModel, spec: &BenchSpec) -> Result<()> {
    let model = Arc::new(model);
    let kernels = kernel_line(&model);
    let app = manifest::App::load(&spec.manifest)?;
    let models = nn::Models::new(vec![(spec.model_name.clone(), model.clone())])?;
    let server = LocalServer::start(app, models)?;
    let addr = server.addr.clone();
    let mut rows = native_rows(&model, spec)?;
    rows.extend(http_rows(&addr, spec)?);
    if let Some(py) = &spec.llama_python {
        for &k in &spec.concurrency {
            match llama_cpp_row(py, spec, k) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("llama.cpp rows skipped: {e:#}"),
            }
        }
    }
    let (p50, p99) = overhead(&addr, spec.overhead_requests)?;
    server.stop();

    println!("model {} ({}), prompt {:?}, {} tokens, {} threads", spec.model_name, spec.model_path.display(), spec.prompt, spec.max_tokens, spec.threads);
    println!("{kernels}\n");
    println!("| path | streams | time to first token (ms) | decode tok/s per stream | aggregate tok/s |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} | {:.1} | {:.2} | {:.2} |", r.path, r.streams, r.ttft_ms, r.per_stream, r.aggregate);
    }
    let single = |p: &str| rows.iter().find(|r| r.path.starts_with(p) && r.streams == 1).map(|r| r.per_stream);
    if let (Some(http), Some(nat)) = (single("HTTP"), single("native")) {
        println!("\nfull path / engine alone (1 stream): {:.3}", http / nat);
    }
    if let (Some(http), Some(cpp)) = (single("HTTP"), single("llama.cpp")) {
        println!("full path / llama.cpp (1 stream): {:.3}", http / cpp);
    }
    let agg = |p: &str, k: usize| rows.iter().find(|r| r.path.starts_with(p) && r.streams == k).map(|r| r.aggregate);
    for &k in spec.concurrency.iter().filter(|&&k| k > 1) {
        if let (Some(many), Some(one)) = (agg("HTTP", k), agg("HTTP", 1)) {
            print!("full path, {k} streams / 1 stream (aggregate): {:.2}x", many / one);
            if let Some(cpp) = agg("llama.cpp", k) {
                print!("; vs llama.cpp at {k}: {:.3}", many / cpp);
            }
            println!();
        }
    }
    println!("wasm path overhead, GET /health (instantiate → response): p50 {p50:.3} ms, p99 {p99:.3} ms");
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
