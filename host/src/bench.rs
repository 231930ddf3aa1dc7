//! `reka-host bench`: one table, measured side by side in one run on the same
//! model, prompt and machine: the engine alone, the full HTTP → wasm → wasi:nn
//! path at several concurrencies, llama.cpp when a Python with `llama_cpp` is
//! given, the per-request overhead of the wasm path, and peak memory.

use crate::model::LoadedModel;
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

fn native_rows(model: &Arc<LoadedModel>, spec: &BenchSpec) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &k in &spec.concurrency {
        let started = Instant::now();
        let handles: Vec<_> = (0..k)
            .map(|_| {
                let (m, p, n) = (model.clone(), spec.prompt.clone(), spec.max_tokens);
                std::thread::spawn(move || native::greedy(&m, &p, n))
            })
            .collect();
        let mut reports = Vec::new();
        for h in handles {
            reports.push(h.join().map_err(|_| anyhow::anyhow!("bench thread panicked"))??);
        }
        let wall = started.elapsed().as_secs_f64();
        let tokens: usize = reports.iter().map(|r| r.ids.len()).sum();
        rows.push(Row {
            path: "native engine".into(),
            streams: k,
            ttft_ms: mean(&reports.iter().map(|r| r.prefill.as_secs_f64() * 1e3).collect::<Vec<_>>()),
            per_stream: mean(&reports.iter().map(|r| r.decode_tokens_per_s()).collect::<Vec<_>>()),
            aggregate: tokens as f64 / wall,
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

const LLAMA_CPP_SCRIPT: &str = r#"
import json, sys, time
from llama_cpp import Llama
path, prompt, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_ctx=512, n_threads=threads, n_batch=512, verbose=False)
ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
t0 = time.perf_counter(); times = []
for tok in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0):
    times.append(time.perf_counter())
    if len(times) == n: break
print(json.dumps({"ttft_ms": (times[0] - t0) * 1e3, "decode": (len(times) - 1) / (times[-1] - times[0])}))
"#;

fn llama_cpp_row(python: &Path, spec: &BenchSpec) -> Result<Row> {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(LLAMA_CPP_SCRIPT)
        .arg(&spec.model_path)
        .arg(&spec.prompt)
        .arg(spec.max_tokens.to_string())
        .arg(spec.threads.to_string())
        .output()
        .context("running llama-cpp-python")?;
    if !out.status.success() {
        bail!("llama-cpp-python failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let decode = v["decode"].as_f64().unwrap_or(0.0);
    Ok(Row {
        path: "llama.cpp (llama-cpp-python)".into(),
        streams: 1,
        ttft_ms: v["ttft_ms"].as_f64().unwrap_or(0.0),
        per_stream: decode,
        aggregate: decode,
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
pub fn run(model: LoadedModel, spec: &BenchSpec) -> Result<()> {
    let model = Arc::new(model);
    let app = manifest::App::load(&spec.manifest)?;
    let models = nn::Models::new(vec![(spec.model_name.clone(), model.clone())])?;
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
    let mut rows = native_rows(&model, spec)?;
    rows.extend(http_rows(&addr, spec)?);
    if let Some(py) = &spec.llama_python {
        match llama_cpp_row(py, spec) {
            Ok(r) => rows.push(r),
            Err(e) => eprintln!("llama.cpp column skipped: {e:#}"),
        }
    }
    let (p50, p99) = overhead(&addr, spec.overhead_requests)?;
    let _ = stop.send(());
    let _ = serving.join();

    println!("model {} ({}), prompt {:?}, {} tokens, {} threads\n", spec.model_name, spec.model_path.display(), spec.prompt, spec.max_tokens, spec.threads);
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
    println!("wasm path overhead, GET /health (instantiate → response): p50 {p50:.3} ms, p99 {p99:.3} ms");
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
