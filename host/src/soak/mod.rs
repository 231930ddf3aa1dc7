//! `reka-host soak`: many concurrent clients against an already running server
//! for a set time, and what the server holds afterwards.
//!
//! Each client loops over a random mix of streaming and non-streaming chat
//! completions, legacy completions, clients that disconnect at a random moment
//! (mid-stream, or while a non-streaming answer is being made), and bad requests
//! (malformed JSON, unknown model, oversize `max_tokens`, wrong content type, a
//! bad base64 image, unknown path, wrong method). Every answer is checked to be
//! well-formed: the expected status with an OpenAI-style JSON error body, a
//! complete SSE stream whose events are JSON and which ends in `data: [DONE]`,
//! or a complete JSON completion whose usage agrees with `max_tokens`; 429 and
//! 503 (with `retry-after`) count as well-formed refusals. A monitor reads
//! `/metrics` meanwhile (resident memory, KV bytes, queue). At the end the
//! server must settle: no KV memory held, nothing running or waiting, and its
//! resident memory back within a bound of the baseline taken after a warm-up.
//! The HTTP client is plain HTTP/1.1 over tokio TCP, so the wire format itself
//! is checked (chunked transfer encoding included).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod check;
mod scrape;
mod wire;

use check::{check_stream, check_whole, error_body, refusal};
use scrape::{first_model, scrape, settle};
use wire::{read_body, read_head, send};

/// The `soak` command's arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// The running server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// How long the clients keep sending, in seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
    /// Seed of the clients' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The model to ask (default: the first of /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// Most tokens a request asks for.
    #[arg(long, default_value_t = 48)]
    pub max_tokens: u32,
    /// How much resident memory may exceed the baseline at the end, in MiB.
    #[arg(long, default_value_t = 64)]
    pub rss_bound_mb: u64,
    /// How long the server may take to settle after the clients stop, in seconds.
    #[arg(long, default_value_t = 15)]
    pub settle_s: u64,
    /// A single request's deadline, in seconds (past it the answer is malformed).
    #[arg(long, default_value_t = 180)]
    pub request_timeout_s: u64,
}

/// What one request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Stream,
    Chat,
    Completion,
    DropStream,
    DropWhole,
    Bad(Bad),
}

/// The bad requests, each with the status it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Bad {
    MalformedJson,
    UnknownModel,
    HugeMaxTokens,
    WrongContentType,
    InvalidImage,
    UnknownPath,
    WrongMethod,
}

impl Bad {
    const ALL: [Bad; 7] =
        [Bad::MalformedJson, Bad::UnknownModel, Bad::HugeMaxTokens, Bad::WrongContentType, Bad::InvalidImage, Bad::UnknownPath, Bad::WrongMethod];

    fn status(self) -> u16 {
        match self {
            Bad::UnknownModel | Bad::UnknownPath => 404,
            Bad::WrongMethod => 405,
            _ => 400,
        }
    }
}

impl Bad {
    fn label(self) -> &'static str {
        match self {
            Bad::MalformedJson => "malformed JSON",
            Bad::UnknownModel => "unknown model",
            Bad::HugeMaxTokens => "max_tokens past the context",
            Bad::WrongContentType => "text/plain body",
            Bad::InvalidImage => "bad base64 image",
            Bad::UnknownPath => "unknown path",
            Bad::WrongMethod => "wrong method",
        }
    }
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Stream => "stream".into(),
            Kind::Chat => "chat".into(),
            Kind::Completion => "completion".into(),
            Kind::DropStream => "disconnect mid-stream".into(),
            Kind::DropWhole => "disconnect while waiting".into(),
            Kind::Bad(b) => format!("bad: {}", b.label()),
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// A complete, well-formed answer.
    Answered,
    /// A well-formed 429 / 503 (or an SSE error event) the server sent under load.
    Refused,
    /// The client went away, as planned.
    Disconnected,
    /// Anything else: what was wrong.
    Malformed(String),
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.next() as usize % xs.len()]
    }
}

const PROMPTS: &[&str] = &[
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers.",
    "Explain what a hash map is in one sentence.",
    "Tell me a short story about a robot who learns to paint, with a happy ending.",
];

/// What the clients share.
struct Shared {
    addr: String,
    model: String,
    max_tokens: u32,
    timeout: Duration,
    stop: AtomicBool,
    results: Mutex<BTreeMap<(Kind, Outcome), u64>>,
    /// Some malformed answers, for the report.
    examples: Mutex<Vec<String>>,
}

impl Shared {
    fn chat(&self, rng: &mut Rng, stream: bool) -> (Value, u32) {
        let n = rng.range(1, u64::from(self.max_tokens)) as u32;
        let body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": rng.pick(PROMPTS)}],
            "max_tokens": n,
            "temperature": 0.8,
            "stream": stream,
        });
        (body, n)
    }

    /// One request of `kind`, and how it ended.
    async fn one(&self, kind: Kind, rng: &mut Rng) -> Outcome {
        let addr = self.addr.as_str();
        let json_type = "application/json";
        let run = async {
            match kind {
                Kind::Stream | Kind::DropStream => {
                    let (body, _) = self.chat(rng, true);
                    let stop = (kind == Kind::DropStream).then(|| rng.range(1, 8));
                    let mut r = send(addr, "POST", "/v1/chat/completions", json_type, body.to_string().as_bytes()).await.map_err(|e| e.to_string())?;
                    let head = read_head(&mut r).await?;
                    Ok(check_stream(&mut r, &head, stop).await)
                }
                Kind::Chat | Kind::Completion | Kind::DropWhole => {
                    let (mut body, n) = self.chat(rng, false);
                    let path = if kind == Kind::Completion {
                        body = json!({"model": self.model, "prompt": rng.pick(PROMPTS), "max_tokens": n, "temperature": 0.8});
                        "/v1/completions"
                    } else {
                        "/v1/chat/completions"
                    };
                    let mut r = send(addr, "POST", path, json_type, body.to_string().as_bytes()).await.map_err(|e| e.to_string())?;
                    let whole = async {
                        let head = read_head(&mut r).await?;
                        let body = read_body(&mut r, &head).await?;
                        Ok::<_, String>(check_whole(kind, n, &head, &body))
                    };
                    if kind == Kind::DropWhole {
                        let patience = Duration::from_millis(rng.range(10, 1500));
                        match tokio::time::timeout(patience, whole).await {
                            Ok(outcome) => outcome,
                            Err(_) => Ok(Outcome::Disconnected),
                        }
                    } else {
                        whole.await
                    }
                }
                Kind::Bad(bad) => {
                    let stream = rng.next().is_multiple_of(2);
                    let (mut body, _) = self.chat(rng, stream);
                    let (mut method, mut path, mut ctype) = ("POST", "/v1/chat/completions", json_type);
                    let raw = match bad {
                        Bad::MalformedJson => {
                            let s = body.to_string().into_bytes();
                            let cut = rng.range(1, s.len() as u64 - 1) as usize;
                            String::from_utf8_lossy(&s[..cut]).into_owned()
                        }
                        Bad::UnknownModel => {
                            body["model"] = json!("no-such-model");
                            body.to_string()
                        }
                        Bad::HugeMaxTokens => {
                            body["max_tokens"] = json!(1_000_000_000u64);
                            body.to_string()
                        }
                        Bad::WrongContentType => {
                            ctype = "text/plain";
                            "max_tokens=5&prompt=hello".to_string()
                        }
                        Bad::InvalidImage => {
                            body["messages"] = json!([{"role": "user", "content": [
                                {"type": "text", "text": "What is this?"},
                                {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not*base64@@"}}
                            ]}]);
                            body.to_string()
                        }
                        Bad::UnknownPath => {
                            path = "/v1/no-such-endpoint";
                            body.to_string()
                        }
                        Bad::WrongMethod => {
                            method = "PUT";
                            body.to_string()
                        }
                    };
                    let mut r = send(addr, method, path, ctype, raw.as_bytes()).await.map_err(|e| e.to_string())?;
                    let head = read_head(&mut r).await?;
                    let body = read_body(&mut r, &head).await?;
                    Ok(match head.status {
                        s if s == bad.status() => match error_body(&body) {
                            Ok(()) => Outcome::Answered,
                            Err(e) => Outcome::Malformed(e),
                        },
                        429 | 503 => refusal(&head, &body),
                        s => Outcome::Malformed(format!("status {s}, expected {}: {}", bad.status(), String::from_utf8_lossy(&body))),
                    })
                }
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Outcome::Malformed(e),
            Err(_) => Outcome::Malformed(format!("no complete answer within {:?}", self.timeout)),
        }
    }

    fn record(&self, kind: Kind, outcome: Outcome) {
        if let Outcome::Malformed(m) = &outcome {
            let mut ex = self.examples.lock().unwrap_or_else(|p| p.into_inner());
            if ex.len() < 20 {
                ex.push(format!("{}: {m}", kind.name()));
            }
        }
        let key = (kind, match outcome {
            Outcome::Malformed(_) => Outcome::Malformed(String::new()),
            o => o,
        });
        *self.results.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
    }
}

/// A random kind: mostly real work, one in four disconnects, one in five bad.
fn random_kind(rng: &mut Rng) -> Kind {
    match rng.range(0, 99) {
        0..=29 => Kind::Stream,
        30..=44 => Kind::Chat,
        45..=54 => Kind::Completion,
        55..=67 => Kind::DropStream,
        68..=79 => Kind::DropWhole,
        _ => Kind::Bad(*rng.pick(&Bad::ALL)),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / f64::from(1 << 20))
}

/// Runs the soak; fails when an answer was malformed or the server did not settle.
pub fn run(args: &SoakArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(soak(args))
}

async fn soak(args: &SoakArgs) -> Result<()> {
    let addr = args.url.trim_start_matches("http://").trim_end_matches('/').to_string();
    if addr.contains('/') || args.url.starts_with("https://") {
        bail!("--url must be http://host:port, not {}", args.url);
    }
    if args.clients == 0 || args.max_tokens == 0 {
        bail!("--clients and --max-tokens must be at least 1");
    }
    let model = match &args.model {
        Some(m) => m.clone(),
        None => first_model(&addr).await?,
    };
    let cold = scrape(&addr).await?;
    let shared = Arc::new(Shared {
        addr: addr.clone(),
        model,
        max_tokens: args.max_tokens,
        timeout: Duration::from_secs(args.request_timeout_s),
        stop: AtomicBool::new(false),
        results: Mutex::new(BTreeMap::new()),
        examples: Mutex::new(Vec::new()),
    });
    // Warm-up: every client's first streams allocate what the server keeps
    // (stores, pools, allocator arenas); the baseline is taken after them.
    let mut warm = tokio::task::JoinSet::new();
    for i in 0..args.clients {
        let s = shared.clone();
        let mut rng = Rng(args.seed ^ ((i as u64) << 32));
        warm.spawn(async move {
            for kind in [Kind::Stream, Kind::Chat] {
                let o = s.one(kind, &mut rng).await;
                s.record(kind, o);
            }
        });
    }
    while warm.join_next().await.is_some() {}
    let before = settle(&addr, Duration::from_secs(args.settle_s)).await?;

    // The monitor: peaks of memory and queue while the clients run.
    let peak = Arc::new(Mutex::new(before));
    let scrapes = Arc::new(AtomicU64::new(0));
    let monitor = {
        let (shared, peak, scrapes, addr) = (shared.clone(), peak.clone(), scrapes.clone(), addr.clone());
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                if let Ok(s) = scrape(&addr).await {
                    scrapes.fetch_add(1, Ordering::Relaxed);
                    let mut p = peak.lock().unwrap_or_else(|p| p.into_inner());
                    p.rss = p.rss.max(s.rss);
                    p.kv_bytes = p.kv_bytes.max(s.kv_bytes);
                    p.running = p.running.max(s.running);
                    p.waiting = p.waiting.max(s.waiting);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_s);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..args.clients {
        let s = shared.clone();
        let mut rng = Rng(args.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (i as u64 + 1));
        clients.spawn(async move {
            while Instant::now() < deadline {
                let kind = random_kind(&mut rng);
                let o = s.one(kind, &mut rng).await;
                s.record(kind, o);
            }
        });
    }
    while clients.join_next().await.is_some() {}
    let ran = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = monitor.await;
    let after = settle(&addr, Duration::from_secs(args.settle_s)).await?;
    let peak = *peak.lock().unwrap_or_else(|p| p.into_inner());

    // The report.
    let results = shared.results.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut by_kind: BTreeMap<Kind, [u64; 4]> = BTreeMap::new();
    for ((kind, outcome), n) in &results {
        let col = match outcome {
            Outcome::Answered => 0,
            Outcome::Refused => 1,
            Outcome::Disconnected => 2,
            Outcome::Malformed(_) => 3,
        };
        by_kind.entry(*kind).or_default()[col] += n;
    }
    let total: [u64; 4] = by_kind.values().fold([0; 4], |a, r| [a[0] + r[0], a[1] + r[1], a[2] + r[2], a[3] + r[3]]);
    println!(
        "soak: {} clients, {:.0} s (+ warm-up), seed {}, model {}, up to {} tokens a request",
        args.clients,
        ran.as_secs_f64(),
        args.seed,
        shared.model,
        args.max_tokens
    );
    println!();
    println!("| request kind | answered | refused (429/503) | disconnected | malformed |");
    println!("|---|---:|---:|---:|---:|");
    for (kind, r) in &by_kind {
        println!("| {} | {} | {} | {} | {} |", kind.name(), r[0], r[1], r[2], r[3]);
    }
    println!("| **all {}** | {} | {} | {} | {} |", total.iter().sum::<u64>(), total[0], total[1], total[2], total[3]);
    println!();
    println!("| server | cold | before (after warm-up) | peak | after |");
    println!("|---|---:|---:|---:|---:|");
    println!("| resident memory | {} | {} | {} | {} |", mib(cold.rss), mib(before.rss), mib(peak.rss), mib(after.rss));
    println!("| KV bytes in use | {} | {} | {} | {} |", cold.kv_bytes, before.kv_bytes, peak.kv_bytes, after.kv_bytes);
    println!("| KV bytes kept by the prefix cache | {} | {} | — | {} |", cold.prefix_bytes, before.prefix_bytes, after.prefix_bytes);
    println!("| requests running | {} | {} | {} | {} |", cold.running, before.running, peak.running, after.running);
    println!("| requests waiting | {} | {} | {} | {} |", cold.waiting, before.waiting, peak.waiting, after.waiting);
    println!(
        "\n/metrics scraped {} times; requests cancelled (server's count): {} during the soak",
        scrapes.load(Ordering::Relaxed),
        after.cancelled.saturating_sub(before.cancelled)
    );
    let mut failures = Vec::new();
    let examples = shared.examples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if total[3] > 0 {
        failures.push(format!("{} malformed answers, e.g.:\n  {}", total[3], examples.join("\n  ")));
    }
    if after.kv_bytes != 0 || after.running != 0 || after.waiting != 0 {
        failures.push(format!(
            "the server did not settle within {} s: {} KV bytes held, {} running, {} waiting",
            args.settle_s, after.kv_bytes, after.running, after.waiting
        ));
    }
    // The prefix cache keeps finished conversations' KV on purpose (inside
    // the KV budget, shown by its own gauge): only growth beyond it counts.
    let bound = args.rss_bound_mb << 20;
    let kept = after.prefix_bytes.saturating_sub(before.prefix_bytes);
    if after.rss > before.rss + kept + bound {
        failures.push(format!(
            "resident memory grew by {} beyond the {} the prefix cache keeps (bound {})",
            mib(after.rss - before.rss - kept),
            mib(kept),
            mib(bound)
        ));
    }
    if failures.is_empty() {
        println!("soak: passed");
        Ok(())
    } else {
        bail!("soak failed:\n- {}", failures.join("\n- "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_kind() {
        let mut rng = Rng(7);
        let kinds: std::collections::BTreeSet<Kind> = (0..2000).map(|_| random_kind(&mut rng)).collect();
        assert_eq!(kinds.len(), 5 + Bad::ALL.len());
    }
}
