#!/usr/bin/env bash
# What one `device` call runs on the GPU machine (CUDA 13 at /usr/local/cuda-13.0,
# no Rust, no network), with target/gpu-dist carried from scripts/build-gpu.sh:
#   1. the CUDA kernel tests against the CPU references,
#   2. gpu-bench --verify on reka-tiny (GPU decoder vs CPU decoder, logits),
#   3. writes the reka-edge checkpoint (7B, bf16, random; ~15 GB) to local disk,
#   4. gpu-bench on it at batch 1 and 32: tokens/s vs the 3.35 TB/s limit.
# Every step has its own time limit; all output goes under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
DIST=${REKA_GPU_DIST:-target/gpu-dist}
OUT=${OUT:-/tmp/reka-gpu-out}
WORK=${REKA_GPU_WORK:-/tmp/reka-gpu}
mkdir -p "$OUT" "$WORK"
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RUST_LOG=${RUST_LOG:-info}
T0=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/summary.txt"; }

stamp "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>&1 | tee -a "$OUT/summary.txt"
df -h "$WORK" | tail -1 | tee -a "$OUT/summary.txt"

stamp "kernel tests"
timeout 180 "$DIST/reka-kernels-tests" cuda:: --nocapture --test-threads=1 >"$OUT/kernel-tests.txt" 2>&1
echo "kernel tests exit $?" | tee -a "$OUT/summary.txt"
grep -E "^test |test result|skipped" "$OUT/kernel-tests.txt" | tee -a "$OUT/summary.txt"

stamp "reka-tiny: verify against the CPU decoder, then bench"
timeout 120 "$DIST/reka-host" write-checkpoint --preset reka-tiny --out "$WORK/reka-tiny" >"$OUT/tiny.txt" 2>&1
timeout 120 "$DIST/reka-host" gpu-bench --model "$WORK/reka-tiny" --verify --batch 1,32 -n 32 >>"$OUT/tiny.txt" 2>&1
echo "tiny exit $?" | tee -a "$OUT/summary.txt"
grep -E "verify|^\|" "$OUT/tiny.txt" | tail -8 | tee -a "$OUT/summary.txt"

stamp "write reka-edge (bf16, random) to $WORK/reka-edge"
if [ ! -e "$WORK/reka-edge/model.safetensors.index.json" ]; then
    timeout 240 "$DIST/reka-host" write-checkpoint --preset reka-edge --out "$WORK/reka-edge" >"$OUT/write-edge.txt" 2>&1
    echo "write exit $?" | tee -a "$OUT/summary.txt"
    tail -2 "$OUT/write-edge.txt" | tee -a "$OUT/summary.txt"
fi

stamp "gpu-bench reka-edge, batch 1 and 32"
timeout 300 "$DIST/reka-host" gpu-bench --model "$WORK/reka-edge" --batch 1,32 -n 64 >"$OUT/bench-edge.txt" 2>&1
echo "bench exit $?" | tee -a "$OUT/summary.txt"
grep -vE "loading weights" "$OUT/bench-edge.txt" | tail -12 | tee -a "$OUT/summary.txt"
stamp "done"
