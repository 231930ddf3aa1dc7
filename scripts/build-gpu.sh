#!/usr/bin/env bash
# Builds the GPU flavour of reka-host (cargo feature `cuda`) and the CUDA kernel
# test binary on a machine WITHOUT a GPU, and packs both, stripped, into
# target/gpu-dist for one `device` call (docs/GPU.md).
#
# - No nvcc and no libcuda are needed: cudarc loads libcuda / libnvrtc at run
#   time and the kernels are compiled by NVRTC on the device.
# - libnvrtc (CUDA 13.0, from the PyPI wheel nvidia-cuda-nvrtc, sha256 pinned)
#   is fetched into ~/.cache/reka/cuda so that the kernel sources are compiled
#   to PTX here by the tests (syntax errors caught without a GPU).
# - The CPU binary at target/release/reka-host is left as it was.
#
# Env: REKA_CUDA_DIR (default ~/.cache/reka/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_DIR=${REKA_CUDA_DIR:-$HOME/.cache/reka/cuda}
WHEEL=nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl
WHEEL_SHA256=ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
NVRTC_LIB="$CUDA_DIR/nvidia/cu13/lib"

if [ ! -e "$NVRTC_LIB/libnvrtc.so.13" ]; then
    mkdir -p "$CUDA_DIR/wheels"
    if [ ! -e "$CUDA_DIR/wheels/$WHEEL" ]; then
        python3 -m pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
            -d "$CUDA_DIR/wheels" 'nvidia-cuda-nvrtc==13.0.88'
    fi
    echo "$WHEEL_SHA256  $CUDA_DIR/wheels/$WHEEL" | sha256sum -c -
    python3 - "$CUDA_DIR/wheels/$WHEEL" "$CUDA_DIR" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n.startswith("nvidia/"):
        z.extract(n, sys.argv[2])
PY
fi
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The GPU bench does not need the wasm components.
export REKA_SKIP_COMPONENTS=1

CPU_BIN=target/release/reka-host
SAVED=""
if [ -e "$CPU_BIN" ]; then
    SAVED=$(mktemp)
    cp -p "$CPU_BIN" "$SAVED"
fi
restore() { if [ -n "$SAVED" ]; then rm -f "$CPU_BIN"; mv "$SAVED" "$CPU_BIN"; fi; }
trap restore EXIT

cargo build --release -p reka-host --features cuda
DIST=target/gpu-dist
rm -rf "$DIST"
mkdir -p "$DIST"
cp "$CPU_BIN" "$DIST/reka-host"

# Kernel tests: here NVRTC compiles every kernel (the GPU tests skip); keep the
# test executable for the device.
cargo test --release -p reka-kernels --features cuda cuda::
TEST_BIN=$(cargo test --release -p reka-kernels --features cuda --lib --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "reka_kernels" and m.get("executable"):
        print(m["executable"])')
cp "$TEST_BIN" "$DIST/reka-kernels-tests"
strip "$DIST/reka-host" "$DIST/reka-kernels-tests"

# Smoke test here: no GPU, so gpu-bench must say so and exit 0.
"$DIST/reka-host" write-checkpoint --preset reka-tiny --out "$DIST/.tiny" >/dev/null 2>&1
"$DIST/reka-host" gpu-bench --model "$DIST/.tiny" --batch 1 -n 4
rm -rf "$DIST/.tiny"

SIZE=$(du -sm "$DIST" | cut -f1)
echo
echo "target/gpu-dist: ${SIZE} MiB (the device tool carries at most 64 MiB)"
ls -la "$DIST"
if [ "$SIZE" -ge 64 ]; then echo "too big to carry" >&2; exit 1; fi
cat <<'MSG'

Device call (one H100, ~10 minutes; writes everything under $OUT):
  run(command="bash scripts/gpu-check.sh", carry=["target/gpu-dist"], timeout_s=600)
MSG
