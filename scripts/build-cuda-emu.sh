#!/usr/bin/env bash
# Builds the CPU emulator of the CUDA driver (kernels/emu) into
# target/cuda-emu/libcuda.so: with that folder on LD_LIBRARY_PATH (and
# libnvrtc, which still compiles the kernels), the GPU build runs its kernels,
# CUDA graphs and decoder on the CPU. For tests only (docs/GPU.md).
# Prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/cuda-emu
mkdir -p "$OUT"
# The kernel table: the names in KERNELS (kernels/src/cuda/mod.rs).
sed -n '/^pub const KERNELS/,/^];/p' kernels/src/cuda/mod.rs | grep -o '"[a-z0-9_]*"' | tr -d '"' |
    sed 's/.*/K(&)/' > "$OUT/table.inc"
# -ffp-contract=off: no fused multiply-add where the source has none, as
# NVRTC is told (fmad=false).
g++ -std=c++17 -O2 -g -fPIC -shared -ffp-contract=off -fvisibility=hidden \
    -Wall -Wextra -Wno-unknown-pragmas -Wno-sign-compare -Wno-unused-parameter \
    -I"$OUT" kernels/emu/simt.cpp kernels/emu/kernels.cpp kernels/emu/driver.cpp \
    -o "$OUT/libcuda.so.tmp"
mv "$OUT/libcuda.so.tmp" "$OUT/libcuda.so"
echo "$OUT"
