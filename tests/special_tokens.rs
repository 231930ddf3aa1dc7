//! End-to-end tests (over a real socket): special_tokens.

mod support;
