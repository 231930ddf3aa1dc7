//! End-to-end tests (over a real socket): metrics.

mod support;
