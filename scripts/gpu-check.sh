#!/usr/bin/env bash
# What the two `device` calls run on the GPU machine (CUDA 13 at
# /usr/local/cuda-13.0, no Rust, no network), with the loads that
# scripts/build-gpu.sh packed (docs/GPU.md). Everything goes under $OUT,
# summary.txt first; the work folder /tmp/reka-gpu outlives a call while the
# machine stays warm (30 s), which is how load a reaches call b.
#
#   a (carry target/device/a): unpack the binaries, keep SmolLM2's first part;
#      1. the CUDA kernel tests, every kernel against its CPU reference; the
#         CPU kernels' variants this CPU runs (AVX-512, VNNI) against their
#         scalar references, and bench-kernels;
#      2. gpu-bench --verify: GPU vs CPU decoder logits on a random reka-tiny;
#      3. write reka-edge (7B, bf16, random; ~15 GB) to local disk;
#      4. gpu-bench on it at batch 1 and 32: tokens/s vs the 3.35 TB/s limit;
#         then batch 1 after 4096 prompt tokens, the attention split over
#         blocks (flash-decoding) and not, side by side.
#   b (carry target/device/b): join SmolLM2 and check its sha256;
#      5. gpu-bench --verify-model: GPU vs CPU logits on SmolLM2's Q4_1 GGUF;
#         then gpu-bench on it (Q4_1 blocks on the GPU), batch 1 and 32;
#      6. HTTP: the same greedy chat requests to `serve --device cuda` and
#         `serve --device cpu` (same binary), streamed tokens compared.
# REKA_GPU_SKIP_EDGE=1 skips 3 and 4 (a dry run of the script without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:?usage: gpu-check.sh a|b}
OUT=${OUT:-/tmp/reka-gpu-out}
WORK=${REKA_GPU_WORK:-/tmp/reka-gpu}
BIN="$WORK/bin"
mkdir -p "$OUT" "$WORK" "$BIN"
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RUST_LOG=${RUST_LOG:-info}
T0=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/summary.txt"; }
FAIL=0
check() { echo "$2 exit $1" | tee -a "$OUT/summary.txt"; [ "$1" = 0 ] || FAIL=1; }
unxz_to() { # xz -d where xz exists, else Python's lzma
    if command -v xz >/dev/null; then xz -dc "$1" | tar -C "$2" -xf -
    else python3 -c 'import lzma,sys,tarfile; tarfile.open(fileobj=lzma.open(sys.argv[1])).extractall(sys.argv[2])' "$1" "$2"; fi
}

case "$STAGE" in
a)
    stamp "device"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>&1 | tee -a "$OUT/summary.txt"
    df -h "$WORK" | tail -1 | tee -a "$OUT/summary.txt"
    unxz_to target/device/a/dist.tar.xz "$BIN" || { echo "unpacking failed" | tee -a "$OUT/summary.txt"; exit 1; }
    cp target/device/a/smollm2.part-a "$WORK/"
    # The app's components where spin.toml names them.
    mkdir -p target/wasm && cp "$BIN/reka-app.wasm" target/wasm/

    stamp "kernel tests"
    timeout 180 "$BIN/reka-kernels-tests" cuda:: --nocapture --test-threads=1 >"$OUT/kernel-tests.txt" 2>&1
    check $? "kernel tests"
    grep -E "^test |test result|skipped" "$OUT/kernel-tests.txt" | tee -a "$OUT/summary.txt"

    # The CPU kernels' variants (AVX-512, VNNI) run only where the CPU has
    # them; this machine's CPU may, the build machine's has AVX2 only.
    stamp "CPU kernel variants against their scalar references, then bench-kernels"
    grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512bw|avx512vl|avx512_vnni|avx_vnni)$' | tr '\n' ' ' | tee -a "$OUT/summary.txt"; echo | tee -a "$OUT/summary.txt"
    timeout 120 "$BIN/reka-kernels-tests" quant kquant half_matmul attention expf cpu:: --nocapture >"$OUT/cpu-kernel-tests.txt" 2>&1
    check $? "CPU kernel variants"
    grep -E "test result|cannot run|running " "$OUT/cpu-kernel-tests.txt" | tee -a "$OUT/summary.txt"
    timeout 120 "$BIN/reka-host" bench-kernels >"$OUT/bench-kernels.txt" 2>&1
    check $? "bench-kernels"
    head -3 "$OUT/bench-kernels.txt" | tee -a "$OUT/summary.txt"

    stamp "reka-tiny: verify against the CPU decoder, then bench"
    timeout 120 "$BIN/reka-host" write-checkpoint --preset reka-tiny --out "$WORK/reka-tiny" >"$OUT/tiny.txt" 2>&1
    timeout 120 "$BIN/reka-host" gpu-bench --model "$WORK/reka-tiny" --verify --batch 1,32 -n 32 >>"$OUT/tiny.txt" 2>&1
    check $? "tiny"
    # gpu-bench exits 0 without a device: a pass needs the verify line too.
    grep -q "^verify: GPU decoder matches" "$OUT/tiny.txt" || check 1 "tiny verify ran on a GPU"
    grep -E "^verify: |^\|" "$OUT/tiny.txt" | tail -8 | tee -a "$OUT/summary.txt"

    if [ -n "${REKA_GPU_SKIP_EDGE:-}" ]; then stamp "done a (reka-edge skipped; failures: $FAIL)"; exit "$FAIL"; fi
    stamp "write reka-edge (bf16, random) to $WORK/reka-edge"
    if [ ! -e "$WORK/reka-edge/model.safetensors.index.json" ]; then
        timeout 200 "$BIN/reka-host" write-checkpoint --preset reka-edge --out "$WORK/reka-edge" >"$OUT/write-edge.txt" 2>&1
        check $? "write"
        tail -2 "$OUT/write-edge.txt" | tee -a "$OUT/summary.txt"
    fi

    stamp "gpu-bench reka-edge, batch 1 and 32; batch 1 at 4096 positions, attention split and not"
    timeout 200 "$BIN/reka-host" gpu-bench --model "$WORK/reka-edge" --batch 1,32 -n 64 --long-context 4096 >"$OUT/bench-edge.txt" 2>&1
    check $? "bench"
    grep -vE "loading weights" "$OUT/bench-edge.txt" | tail -20 | tee -a "$OUT/summary.txt"
    ;;
b)
    stamp "join SmolLM2"
    if [ ! -x "$BIN/reka-host" ] || [ ! -e "$WORK/smollm2.part-a" ]; then
        echo "load a is not on this machine (it went back between the calls): run stage a again, then b at once" | tee -a "$OUT/summary.txt"
        exit 1
    fi
    SMOL="$WORK/SmolLM2-135M-Instruct.Q4_1.gguf"
    cat "$WORK/smollm2.part-a" target/device/b/smollm2.part-b >"$SMOL"
    if [ "$(sha256sum "$SMOL" | cut -d' ' -f1)" != "$(cat target/device/b/smollm2.sha256)" ]; then
        echo "SmolLM2 sha256 mismatch" | tee -a "$OUT/summary.txt"; exit 1
    fi
    echo "sha256 ok" | tee -a "$OUT/summary.txt"
    mkdir -p target/wasm && cp "$BIN/reka-app.wasm" target/wasm/

    stamp "SmolLM2 Q4_1: GPU vs CPU decoder logits"
    timeout 120 "$BIN/reka-host" write-checkpoint --preset reka-tiny --out "$WORK/reka-tiny" >/dev/null 2>&1
    timeout 150 "$BIN/reka-host" gpu-bench --model "$WORK/reka-tiny" --verify --verify-model "$SMOL" --batch 1 -n 8 >"$OUT/smollm2-verify.txt" 2>&1
    check $? "verify"
    [ "$(grep -c "^verify: GPU decoder matches" "$OUT/smollm2-verify.txt")" = 2 ] || check 1 "SmolLM2 verify ran on a GPU"
    grep -E "^verify" "$OUT/smollm2-verify.txt" | tail -14 | tee -a "$OUT/summary.txt"

    stamp "SmolLM2 Q4_1 decode speed on the GPU, batch 1 and 32"
    timeout 90 "$BIN/reka-host" gpu-bench --model "$SMOL" --batch 1,32 -n 64 >"$OUT/bench-smollm2.txt" 2>&1
    check $? "bench SmolLM2"
    grep -E "^weights read|^\|" "$OUT/bench-smollm2.txt" | tail -7 | tee -a "$OUT/summary.txt"

    stamp "SmolLM2 over HTTP: serve --device cuda vs --device cpu, greedy"
    timeout 240 python3 scripts/http-greedy-compare.py "$BIN/reka-host" "$SMOL" --devices cuda,cpu --out "$OUT" >"$OUT/http-greedy.txt" 2>&1
    check $? "http"
    tail -12 "$OUT/http-greedy.txt" | tee -a "$OUT/summary.txt"
    grep -m3 -E "decoder on the GPU|CUDA device ready" "$OUT/serve-cuda.log" | tee -a "$OUT/summary.txt"
    ;;
*)
    echo "usage: gpu-check.sh a|b" >&2
    exit 2
    ;;
esac
stamp "done $STAGE (failures: $FAIL)"
exit "$FAIL"
