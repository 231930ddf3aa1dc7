#!/usr/bin/env bash
# The GPU build's checks on a machine without a GPU: the CUDA kernels, the GPU
# decoder (eager and CUDA graphs) and `serve --device cuda` run on the CPU
# emulator of the CUDA driver (kernels/emu; docs/GPU.md, "The CPU emulator").
# NVRTC still compiles every kernel (each must be an entry of the PTX); the
# emulator runs the same source compiled by g++. Emulated speed means nothing.
#   1. the kernel tests (kernels/src/cuda/tests.rs) against the CPU references,
#      none skipped;
#   2. gpu-bench --verify: GPU vs CPU decoder logits on reka-tiny (bf16) and on
#      SmolLM2's Q4_1 GGUF (the CPU build's llama.cpp numerics);
#   3. HTTP over a real socket (scripts/http-greedy-compare.py, SmolLM2):
#      `serve --device cuda` (CUDA graphs, the prompts sent at once so the
#      engine batches them) against `serve --device cpu` of the same binary
#      (the prompts one by one): the GGUF path computes the CPU build's bits
#      (on a CPU with AVX2), so the greedy tokens must be equal.
# The CPU binary at target/release/reka-host is left as it was; logs go to
# target/cuda-emu/logs.
# Env: REKA_EMU_PROMPTS (default 2), REKA_EMU_TOKENS (default 16) for step 3.
set -euo pipefail
cd "$(dirname "$0")/.."
NVRTC_LIB=$(scripts/fetch-nvrtc.sh)
EMU="$PWD/$(scripts/build-cuda-emu.sh)"
LOG=target/cuda-emu/logs
mkdir -p "$LOG"
emu() { LD_LIBRARY_PATH="$EMU:$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

echo "[${SECONDS} s] == 1. CUDA kernel tests on the emulator"
# -p reka-host: the same feature resolution as the GPU host build below (and
# test.sh's GPU step), so the three share one build of the dependencies.
emu cargo test --release -p reka-host -p reka-kernels --features reka-host/cuda --lib cuda:: -- --nocapture 2>&1 | tee "$LOG/kernel-tests.txt"
if grep -q "^skipped" "$LOG/kernel-tests.txt"; then
    echo "the kernel tests skipped: the emulator was not picked up" >&2
    exit 1
fi

# The GPU build of reka-host, kept beside the emulator.
GPU_BIN=target/cuda-emu/reka-host
scripts/build-cuda-host.sh "$GPU_BIN"
FETCHED=$(target/release/reka-host fetch)
SMOL=$(printf '%s\n' "$FETCHED" | grep -m1 '\.gguf$')

echo "[${SECONDS} s] == 2. GPU vs CPU decoder logits: reka-tiny, SmolLM2 Q4_1"
TINY=$(mktemp -d)
"$GPU_BIN" write-checkpoint --preset reka-tiny --out "$TINY/reka-tiny" >/dev/null 2>&1
emu "$GPU_BIN" gpu-bench --model "$TINY/reka-tiny" --verify --verify-model "$SMOL" --batch 1 -n 3 \
    >"$LOG/verify.txt" 2>&1 || { tail -20 "$LOG/verify.txt"; exit 1; }
rm -rf "$TINY"
grep -E "^device:|^verify: " "$LOG/verify.txt"
[ "$(grep -c "^verify: GPU decoder matches" "$LOG/verify.txt")" = 2 ] || { echo "verify did not run on the emulator" >&2; exit 1; }

echo "[${SECONDS} s] == 3. HTTP greedy tokens: serve --device cuda (graphs, batched) vs --device cpu"
emu python3 scripts/http-greedy-compare.py "$GPU_BIN" "$SMOL" --devices cuda,cpu --out "$LOG" --concurrent-a \
    --prompts "${REKA_EMU_PROMPTS:-2}" --max-tokens "${REKA_EMU_TOKENS:-16}"
grep -m1 "decoder on the GPU" "$LOG/serve-cuda.log"
