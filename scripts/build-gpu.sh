#!/usr/bin/env bash
# Builds the GPU flavour of reka-host (cargo feature `cuda`) and the CUDA kernel
# test binary on a machine WITHOUT a GPU, runs every GPU-build test that needs
# no GPU, and packs what the device run needs into two loads of at most 64 MiB
# each (the device tool's limit, the working tree included), for two device
# calls on one warm machine (docs/GPU.md):
#   target/device/a: dist.tar.xz (reka-host, reka-kernels-tests, reka-app.wasm,
#                    stripped and xz-compressed) + smollm2.part-a
#   target/device/b: smollm2.part-b + smollm2.sha256
#
# - No nvcc and no libcuda are needed: cudarc loads libcuda / libnvrtc at run
#   time and the kernels are compiled by NVRTC on the device.
# - libnvrtc is fetched (scripts/fetch-nvrtc.sh) so that the kernel sources
#   are compiled to PTX here by the tests (syntax errors caught without a GPU).
# - The CPU binary at target/release/reka-host is left as it was.
#
# Env: REKA_CUDA_DIR (default ~/.cache/reka/cuda), for fetch-nvrtc.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

NVRTC_LIB=$(scripts/fetch-nvrtc.sh)
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The GPU bench does not need the wasm components.
export REKA_SKIP_COMPONENTS=1

STAGE=$(mktemp -d)
scripts/build-cuda-host.sh "$STAGE/reka-host"
FETCHED=$(target/release/reka-host fetch)
SMOL=$(printf '%s\n' "$FETCHED" | grep -m1 '\.gguf$')
cp target/wasm/reka-app.wasm "$STAGE/reka-app.wasm"

# Tests of the GPU build that need no GPU: NVRTC compiles every kernel, the
# GGUF/checkpoint readers for the GPU, --device fallback (the GPU tests skip
# with a message). Keep the kernel test executable for the device.
cargo test --release -p reka-kernels --features cuda cuda::
cargo test --release -p reka-engine --features cuda --lib -- gpu:: device::
TEST_BIN=$(cargo test --release -p reka-kernels --features cuda --lib --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "reka_kernels" and m.get("executable"):
        print(m["executable"])')
cp "$TEST_BIN" "$STAGE/reka-kernels-tests"
strip "$STAGE/reka-host" "$STAGE/reka-kernels-tests"

# Smoke tests here, without a GPU: gpu-bench says so and exits 0; serve with
# --device auto falls back to the CPU; --device cuda is refused.
"$STAGE/reka-host" write-checkpoint --preset reka-tiny --out "$STAGE/.tiny" >/dev/null 2>&1
"$STAGE/reka-host" gpu-bench --model "$STAGE/.tiny" --batch 1 -n 4
rm -rf "$STAGE/.tiny"
if "$STAGE/reka-host" serve --device cuda --model "$SMOL" --listen 127.0.0.1:0 >"$STAGE/.serve.log" 2>&1; then
    echo "serve --device cuda should fail without a GPU" >&2; exit 1
fi
grep -q "no CUDA device" "$STAGE/.serve.log"
rm -f "$STAGE/.serve.log"

OUTDIR=target/device
rm -rf "$OUTDIR" target/gpu-dist
mkdir -p "$OUTDIR/a" "$OUTDIR/b"
tar -C "$STAGE" -cf - reka-host reka-kernels-tests reka-app.wasm | xz -T0 -6 >"$OUTDIR/a/dist.tar.xz"
rm -rf "$STAGE"
# SmolLM2 (98 MB) is split so that each load, with the slim tree, stays under 64 MiB.
SPLIT=$(( 52 * 1000 * 1000 - $(stat -c %s "$OUTDIR/a/dist.tar.xz") ))
head -c "$SPLIT" "$SMOL" >"$OUTDIR/a/smollm2.part-a"
tail -c +"$(( SPLIT + 1 ))" "$SMOL" >"$OUTDIR/b/smollm2.part-b"
(cd "$(dirname "$SMOL")" && sha256sum "$(basename "$SMOL")") | awk '{print $1}' >"$OUTDIR/b/smollm2.sha256"

TREE=$(scripts/device-slim.sh status | grep -q '^slim' && echo slim || echo full)
TRACKED=$(git ls-files -z ':!tests/fixtures' | xargs -0 cat | wc -c)
for part in a b; do
    BYTES=$(du -sb "$OUTDIR/$part" | cut -f1)
    TOTAL=$(( BYTES + TRACKED ))
    echo "load $part: $(( BYTES >> 20 )) MiB carried + $(( TRACKED >> 20 )) MiB slim tree = $(( TOTAL >> 20 )) MiB"
    if [ "$TOTAL" -ge $(( 64 << 20 )) ]; then echo "load $part is too big to carry" >&2; exit 1; fi
done
cat <<MSG

The checkout is $TREE now. Device calls (one H100; docs/GPU.md):
  scripts/device-slim.sh on
  run(command="bash scripts/gpu-check.sh a", carry=["target/device/a"], timeout_s=600)
  run(command="bash scripts/gpu-check.sh b", carry=["target/device/b"], timeout_s=300)   # at once: the machine stays warm 30 s
  scripts/device-slim.sh off
MSG
