#!/usr/bin/env bash
# CI's lm-evaluation-harness check (issue 16): serves the default model
# (SmolLM2-135M-Instruct, through `reka-host fetch`) on a free loopback port and
# runs scripts/eval-check.sh against it: lm-eval 0.4.13 (PyPI, pinned) with
# local-completions and the server's own tokenizer endpoints on the first 50
# questions of ARC-Easy and HellaSwag, each choice's log-likelihood compared
# with lm-eval's `hf` backend on the same GGUF (tests/fixtures/eval).
# Tolerances (measured, docs/EVAL.md): a choice's summed log-likelihood within
# EVAL_TOL nats (2.0; llama.cpp itself differs from hf by up to 1.6) and at most
# EVAL_MAX_ARGMAX_DIFFS predicted answers different per task (1; measured 0).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$(./target/release/reka-host fetch | sed -n 1p)
source scripts/serve-bg.sh
serve_in_background -- --model "$MODEL" --model-name smollm2-135m
EVAL_TOL=${EVAL_TOL:-2.0} EVAL_MAX_ARGMAX_DIFFS=${EVAL_MAX_ARGMAX_DIFFS:-1} scripts/eval-check.sh "http://127.0.0.1:$PORT"
