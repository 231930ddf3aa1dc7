//! End-to-end tests (over a real socket): hardening.

mod support;
