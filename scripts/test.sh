#!/usr/bin/env bash
# The project's test command: lint, unit tests of every crate and component, and
# the end-to-end tests over a real socket with the real model.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step says how long it took (CI time is budgeted: README.md, "Tests").
step() { local t0=$SECONDS; "$@"; echo "[test.sh] $((SECONDS - t0)) s: $*" >&2; }
step scripts/setup.sh
step cargo clippy --release --workspace --all-targets -- -D warnings
step cargo clippy --release --manifest-path components/Cargo.toml --target wasm32-wasip2 -- -D warnings
# The components' logic (sampling, stop strings, request validation) also runs natively.
# (unoptimised: they are quick to run, and the debug build takes a third of
# the release one's time)
step cargo test --manifest-path components/Cargo.toml --lib
step cargo test --release --workspace
# (examples/embed's test runs the example binary: stock wasmtime + reka-engine's
# wasi:nn backend, one in-process request to the composed app.)
# Deployment files offline: manifests against the Kubernetes and SpinApp
# schemas, and the image's layer runs on its own (docs/DEPLOY.md).
step scripts/deploy-check.sh
# Reka Edge over HTTP with the official openai Python client (pip, pinned).
step scripts/openai-client-check.sh
# Structured output and tool calls through openai, instructor and langchain-openai
# (pip, pinned in tests/clients/requirements.txt) against SmolLM2.
step scripts/structured-client-check.sh
# The web UI (playground, arena, leaderboard) in Debian's headless Chromium,
# driven by Selenium (pip, pinned): docs/WEB.md, "Tested".
step scripts/browser-check.sh
# lm-evaluation-harness (PyPI, pinned) against the server on 50 questions each of
# ARC-Easy and HellaSwag: every choice's log-likelihood against lm-eval's own hf
# backend (tests/fixtures/eval; tolerances in docs/EVAL.md).
step scripts/eval-ci.sh
# A short soak: concurrent streams, random disconnects and bad requests for
# ~20 s; every answer well-formed, no KV memory held after, RSS back in bounds.
step scripts/soak-check.sh
# The GPU build (cargo feature `cuda`) on this GPU-less machine: lint, and the
# tests that need no device (the GPU weight readers, --device fallback); the
# kernel tests print why they skip (no libnvrtc / no CUDA device).
step cargo clippy --release -p reka-host -p reka-engine -p reka-kernels --features reka-host/cuda --lib --bins -- -D warnings
step cargo test --release -p reka-host -p reka-engine -p reka-kernels --features reka-host/cuda --lib -- cuda:: gpu:: device::
# The GPU build on the CPU emulator of the CUDA driver (kernels/emu): the
# kernel tests against their CPU references, GPU-vs-CPU decoder logits, and
# greedy tokens over HTTP from `serve --device cuda` vs `--device cpu`.
step scripts/gpu-emu-check.sh
