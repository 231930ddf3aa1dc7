//! Prometheus metrics of the server and its engines (`GET /metrics`).
//!
//! Process-wide counters, gauges and histograms kept in atomics; rendered in the
//! Prometheus text exposition format (version 0.0.4). Names follow vLLM's where
//! one exists, with this project's `reka:` prefix instead of `vllm:`, and keep
//! vLLM's meaning; per-engine series carry vLLM's `model_name` label. Each
//! model's engine thread ([`crate::nn::scheduler`]) owns one [`EngineMetrics`];
//! docs/RELIABILITY.md ("Metrics") defines what each series counts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static CANCELLED: AtomicU64 = AtomicU64::new(0);

/// HTTP status codes 100..=599, one counter each.
static HTTP: [AtomicU64; 500] = [const { AtomicU64::new(0) }; 500];

/// Every engine's metrics, in the order the engines started.
static ENGINES: Mutex<Vec<Arc<EngineMetrics>>> = Mutex::new(Vec::new());

/// Bucket bounds (seconds) of time to first token: vLLM's.
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0,
    2560.0,
];

/// Bucket bounds (seconds) of inter-token latency: vLLM's.
pub const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];

/// Counts one HTTP response by its status code.
pub fn http_request(status: u16) {
    if let Some(c) = status.checked_sub(100).and_then(|i| HTTP.get(usize::from(i))) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one request whose client went away before it finished.
pub fn request_cancelled() {
    CANCELLED.fetch_add(1, Ordering::Relaxed);
}

/// A histogram with fixed bucket bounds; observations in nanoseconds.
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_ns: AtomicU64::new(0) }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self.bounds.iter().position(|&b| s <= b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// `name_bucket` (cumulative, ending in `+Inf`), `name_sum`, `name_count`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut total = 0;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {total}");
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

/// One model's engine: what it runs, what waits, its tokens and latencies.
pub struct EngineMetrics {
    model: String,
    /// Sessions holding KV memory (admitted).
    pub running: AtomicU64,
    /// New sessions waiting for admission.
    pub waiting: AtomicU64,
    /// Bytes of the KV budget held by sessions' caches.
    pub kv_bytes: AtomicU64,
    /// The KV budget in bytes.
    pub kv_budget: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
    /// Forward passes the engine ran.
    pub steps: AtomicU64,
    /// Sessions in those passes, summed: over `steps`, the mean batch.
    pub step_sessions: AtomicU64,
    /// Prefix cache ([`crate::nn::prefix`]): new prompts looked up, those that
    /// reused cached positions, the positions reused, entries evicted for
    /// memory, and the bytes it holds and may hold (0: off).
    pub prefix_queries: AtomicU64,
    pub prefix_hits: AtomicU64,
    pub prefix_reused_tokens: AtomicU64,
    pub prefix_evictions: AtomicU64,
    pub prefix_bytes: AtomicU64,
    pub prefix_budget: AtomicU64,
    /// Sessions refused or ended by the engine, by [`Rejection`].
    rejected: [AtomicU64; 4],
    pub ttft: Histogram,
    pub itl: Histogram,
}

/// Why the engine refused or ended a session.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    /// Too many sessions already waiting (429).
    Busy,
    /// No memory came free in time (503).
    Timeout,
    /// Shed under running sessions when memory ran out (503).
    Shed,
    /// The prompt can never fit in the budget (400).
    TooLarge,
}

impl Rejection {
    const ALL: [Rejection; 4] = [Rejection::Busy, Rejection::Timeout, Rejection::Shed, Rejection::TooLarge];

    fn label(self) -> &'static str {
        match self {
            Rejection::Busy => "busy",
            Rejection::Timeout => "admission_timeout",
            Rejection::Shed => "shed",
            Rejection::TooLarge => "prompt_too_large",
        }
    }
}

impl EngineMetrics {
    /// Counts one refused or shed session.
    pub fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The metrics of the engine of `model`, registered for [`render`] (an engine
/// started again under the same name shares its predecessor's series).
pub fn engine(model: &str) -> Arc<EngineMetrics> {
    let mut all = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = all.iter().find(|m| m.model == model) {
        return m.clone();
    }
    let m = Arc::new(EngineMetrics {
        model: model.to_string(),
        running: AtomicU64::new(0),
        waiting: AtomicU64::new(0),
        kv_bytes: AtomicU64::new(0),
        kv_budget: AtomicU64::new(0),
        prompt_tokens: AtomicU64::new(0),
        generation_tokens: AtomicU64::new(0),
        steps: AtomicU64::new(0),
        step_sessions: AtomicU64::new(0),
        prefix_queries: AtomicU64::new(0),
        prefix_hits: AtomicU64::new(0),
        prefix_reused_tokens: AtomicU64::new(0),
        prefix_evictions: AtomicU64::new(0),
        prefix_bytes: AtomicU64::new(0),
        prefix_budget: AtomicU64::new(0),
        rejected: [const { AtomicU64::new(0) }; 4],
        ttft: Histogram::new(TTFT_BUCKETS),
        itl: Histogram::new(ITL_BUCKETS),
    });
    all.push(m.clone());
    m
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line per engine of `value`.
fn per_engine(out: &mut String, engines: &[Arc<EngineMetrics>], name: &str, kind: &str, help: &str, value: impl Fn(&EngineMetrics) -> String) {
    family(out, name, kind, help);
    for e in engines {
        let _ = writeln!(out, "{name}{{model_name=\"{}\"}} {}", escape(&e.model), value(e));
    }
}

/// A field of `/proc/self/status` in kB, as bytes (Linux only; 0 elsewhere).
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_string))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// The process's resident memory in bytes (0 where `/proc` is missing).
pub fn resident_memory_bytes() -> u64 {
    proc_status_bytes("VmRSS")
}

/// Everything, in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    let engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
    let mut out = String::with_capacity(8 << 10);
    per_engine(&mut out, &engines, "reka:num_requests_running", "gauge", "Number of requests in model execution batches (sessions holding KV memory).", |e| load(&e.running));
    per_engine(&mut out, &engines, "reka:num_requests_waiting", "gauge", "Number of requests waiting to be processed (new sessions waiting for KV memory).", |e| load(&e.waiting));
    per_engine(&mut out, &engines, "reka:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", |e| {
        let budget = e.kv_budget.load(Ordering::Relaxed);
        let used = e.kv_bytes.load(Ordering::Relaxed);
        if budget == 0 { "0".into() } else { (used as f64 / budget as f64).to_string() }
    });
    per_engine(&mut out, &engines, "reka:kv_cache_bytes_in_use", "gauge", "Bytes of the KV-cache budget held by sessions.", |e| load(&e.kv_bytes));
    per_engine(&mut out, &engines, "reka:kv_cache_budget_bytes", "gauge", "The KV-cache budget in bytes (--kv-budget-mb).", |e| load(&e.kv_budget));
    per_engine(&mut out, &engines, "reka:prompt_tokens_total", "counter", "Number of prefill tokens processed.", |e| load(&e.prompt_tokens));
    per_engine(&mut out, &engines, "reka:generation_tokens_total", "counter", "Number of generation tokens processed.", |e| load(&e.generation_tokens));
    per_engine(&mut out, &engines, "reka:engine_steps_total", "counter", "Forward passes (batched steps) the engine ran.", |e| load(&e.steps));
    per_engine(&mut out, &engines, "reka:engine_step_sessions_total", "counter", "Sessions in those forward passes, summed (divided by the steps: the mean batch).", |e| load(&e.step_sessions));
    per_engine(&mut out, &engines, "reka:prefix_cache_queries_total", "counter", "New prompts looked up in the prefix cache.", |e| load(&e.prefix_queries));
    per_engine(&mut out, &engines, "reka:prefix_cache_hits_total", "counter", "New prompts that reused cached KV positions of an earlier prompt.", |e| load(&e.prefix_hits));
    per_engine(&mut out, &engines, "reka:prefix_cache_reused_tokens_total", "counter", "Prompt positions whose KV came from the prefix cache instead of a prefill.", |e| load(&e.prefix_reused_tokens));
    per_engine(&mut out, &engines, "reka:prefix_cache_evictions_total", "counter", "Prefix-cache entries evicted (least recently used) for live sessions or its bound.", |e| load(&e.prefix_evictions));
    per_engine(&mut out, &engines, "reka:prefix_cache_bytes", "gauge", "Bytes of the KV budget held by the prefix cache (not in kv_cache_bytes_in_use).", |e| load(&e.prefix_bytes));
    per_engine(&mut out, &engines, "reka:prefix_cache_budget_bytes", "gauge", "The most the prefix cache may hold (0: off).", |e| load(&e.prefix_budget));
    family(&mut out, "reka:requests_rejected_total", "counter", "Sessions the engine refused or shed, by reason.");
    for e in &engines {
        for r in Rejection::ALL {
            let _ = writeln!(out, "reka:requests_rejected_total{{model_name=\"{}\",reason=\"{}\"}} {}", escape(&e.model), r.label(), load(&e.rejected[r as usize]));
        }
    }
    family(&mut out, "reka:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.");
    for e in &engines {
        e.ttft.render(&mut out, "reka:time_to_first_token_seconds", &format!("model_name=\"{}\"", escape(&e.model)));
    }
    family(&mut out, "reka:inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds.");
    for e in &engines {
        e.itl.render(&mut out, "reka:inter_token_latency_seconds", &format!("model_name=\"{}\"", escape(&e.model)));
    }
    family(&mut out, "reka:requests_cancelled_total", "counter", "Requests whose client went away before they finished.");
    let _ = writeln!(out, "reka:requests_cancelled_total {}", CANCELLED.load(Ordering::Relaxed));
    family(&mut out, "reka:http_requests_total", "counter", "HTTP responses by status code.");
    for (i, c) in HTTP.iter().enumerate() {
        let n = c.load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(out, "reka:http_requests_total{{status=\"{}\"}} {n}", i + 100);
        }
    }
    family(&mut out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    let _ = writeln!(out, "process_resident_memory_bytes {}", resident_memory_bytes());
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        family(&mut out, "process_open_fds", "gauge", "Number of open file descriptors.");
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let h = Histogram::new(&[0.1, 1.0]);
        for ms in [50, 50, 500, 5000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut out = String::new();
        h.render(&mut out, "x", "model_name=\"m\"");
        assert_eq!(
            out,
            "x_bucket{model_name=\"m\",le=\"0.1\"} 2\nx_bucket{model_name=\"m\",le=\"1\"} 3\nx_bucket{model_name=\"m\",le=\"+Inf\"} 4\n\
             x_sum{model_name=\"m\"} 5.6\nx_count{model_name=\"m\"} 4\n"
        );
    }

    #[test]
    fn statuses_outside_the_table_are_ignored() {
        http_request(0);
        http_request(99);
        http_request(600);
        http_request(u16::MAX);
        http_request(599);
        assert!(render().contains("reka:http_requests_total{status=\"599\"} 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
