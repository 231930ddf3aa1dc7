//! What the soak reads of the server: `/metrics` (resident memory, KV bytes,
//! queue, cancellations), the served model, and the wait for it to settle.

use super::wire::{read_body, read_head, send};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::time::{Duration, Instant};

/// One scrape of `/metrics`: the figures the soak watches.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scrape {
    pub rss: u64,
    pub kv_bytes: u64,
    /// KV memory the prefix cache keeps for finished sessions (0 when the
    /// server has no such metric).
    pub prefix_bytes: u64,
    pub running: u64,
    pub waiting: u64,
    pub cancelled: u64,
}

/// Sums every sample of `name` (all label sets) in a Prometheus text body.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let base = series.split('{').next().unwrap_or(series);
        if base == name {
            *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    found
}

pub async fn scrape(addr: &str) -> Result<Scrape> {
    let mut r = send(addr, "GET", "/metrics", "text/plain", b"").await.context("connecting for /metrics")?;
    let head = read_head(&mut r).await.map_err(anyhow::Error::msg)?;
    let body = read_body(&mut r, &head).await.map_err(anyhow::Error::msg)?;
    if head.status != 200 {
        bail!("GET /metrics answered {}", head.status);
    }
    let text = String::from_utf8_lossy(&body);
    let get = |n: &str| metric_sum(&text, n).with_context(|| format!("/metrics has no {n}"));
    Ok(Scrape {
        rss: get("process_resident_memory_bytes")? as u64,
        kv_bytes: get("reka:kv_cache_bytes_in_use")? as u64,
        prefix_bytes: metric_sum(&text, "reka:prefix_cache_bytes").unwrap_or(0.0) as u64,
        running: get("reka:num_requests_running")? as u64,
        waiting: get("reka:num_requests_waiting")? as u64,
        cancelled: get("reka:requests_cancelled_total")? as u64,
    })
}

/// The first model of `/v1/models`.
pub async fn first_model(addr: &str) -> Result<String> {
    let mut r = send(addr, "GET", "/v1/models", "application/json", b"").await.context("connecting to the server")?;
    let head = read_head(&mut r).await.map_err(anyhow::Error::msg)?;
    let body = read_body(&mut r, &head).await.map_err(anyhow::Error::msg)?;
    let v: Value = serde_json::from_slice(&body).context("/v1/models is not JSON")?;
    v["data"][0]["id"].as_str().map(str::to_string).context("/v1/models lists no model")
}

/// Waits until nothing runs, waits or holds KV memory (or `patience` runs out),
/// then gives the memory a moment to come back; returns the last scrape.
pub async fn settle(addr: &str, patience: Duration) -> Result<Scrape> {
    let until = Instant::now() + patience;
    let mut last = scrape(addr).await?;
    let idle = |s: &Scrape| s.kv_bytes == 0 && s.running == 0 && s.waiting == 0;
    while Instant::now() < until && !idle(&last) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = scrape(addr).await?;
    }
    // Memory freed by the last requests may lag their KV by a moment: take the
    // lowest reading of a second.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = scrape(addr).await?;
        if s.rss < last.rss {
            last.rss = s.rss;
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_add_every_label_set() {
        let text = "# HELP a x\n# TYPE a gauge\na{model_name=\"m\"} 3\na{model_name=\"n\"} 4\nab 9\n";
        assert_eq!(metric_sum(text, "a"), Some(7.0));
        assert_eq!(metric_sum(text, "ab"), Some(9.0));
        assert_eq!(metric_sum(text, "c"), None);
    }
}
