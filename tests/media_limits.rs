//! End-to-end tests (over a real socket): media_limits.

mod support;
