#!/usr/bin/env bash
# The project's test command: lint, unit tests of every crate and component, and
# the end-to-end tests over a real socket with the real model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo clippy --release --workspace --all-targets -- -D warnings
cargo clippy --release --manifest-path components/Cargo.toml --target wasm32-wasip2 -- -D warnings
# The components' logic (sampling, stop strings, request validation) also runs natively.
cargo test --release --manifest-path components/Cargo.toml --lib
cargo test --release --workspace
