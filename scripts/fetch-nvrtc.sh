#!/usr/bin/env bash
# Fetches libnvrtc (CUDA 13.0, from the PyPI wheel nvidia-cuda-nvrtc, sha256
# pinned) into ~/.cache/reka/cuda unless it is there, and prints the folder
# that holds libnvrtc.so.13 (for LD_LIBRARY_PATH). NVRTC compiles the kernels
# to PTX; no GPU is needed for that.
# Env: REKA_CUDA_DIR (default ~/.cache/reka/cuda).
set -euo pipefail
CUDA_DIR=${REKA_CUDA_DIR:-$HOME/.cache/reka/cuda}
WHEEL=nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl
WHEEL_SHA256=ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
NVRTC_LIB="$CUDA_DIR/nvidia/cu13/lib"

if [ ! -e "$NVRTC_LIB/libnvrtc.so.13" ]; then
    mkdir -p "$CUDA_DIR/wheels"
    if [ ! -e "$CUDA_DIR/wheels/$WHEEL" ]; then
        python3 -m pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
            -d "$CUDA_DIR/wheels" 'nvidia-cuda-nvrtc==13.0.88' >&2
    fi
    echo "$WHEEL_SHA256  $CUDA_DIR/wheels/$WHEEL" | sha256sum -c - >&2
    python3 - "$CUDA_DIR/wheels/$WHEEL" "$CUDA_DIR" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n.startswith("nvidia/"):
        z.extract(n, sys.argv[2])
PY
fi
echo "$NVRTC_LIB"
