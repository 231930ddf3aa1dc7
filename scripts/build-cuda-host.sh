#!/usr/bin/env bash
# Builds reka-host with the `cuda` feature into DEST (e.g. target/cuda-emu/reka-host),
# leaving the CPU binary at target/release/reka-host as it was. The plain build
# comes first where it is missing: the app's wasm components come from it (the
# GPU build skips them) and so does `reka-host fetch`.
# Usage: build-cuda-host.sh DEST
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:?usage: build-cuda-host.sh DEST}
CPU_BIN=target/release/reka-host
if [ ! -e target/wasm/reka-app.wasm ] || [ ! -e "$CPU_BIN" ]; then
    env -u REKA_SKIP_COMPONENTS cargo build --release -p reka-host
fi
SAVED=$(mktemp)
cp -p "$CPU_BIN" "$SAVED"
restore() { rm -f "$CPU_BIN"; mv "$SAVED" "$CPU_BIN"; }
trap restore EXIT
REKA_SKIP_COMPONENTS=1 cargo build --release -p reka-host --features cuda
mkdir -p "$(dirname "$DEST")"
cp "$CPU_BIN" "$DEST"
