#!/usr/bin/env bash
# A short soak for CI: serves the default model (SmolLM2-135M, found through
# `reka-host fetch`) on a free loopback port and runs `reka-host soak` against
# it: a few concurrent clients mixing streaming and non-streaming requests,
# random disconnects and bad requests for ~20 s. Fails if an answer was
# malformed, KV memory is still held afterwards or resident memory did not come
# back. Needs target/release/reka-host. The long runs are in docs/RELIABILITY.md.
# Environment: SOAK_CLIENTS (4), SOAK_SECONDS (20), SOAK_SEED (1).
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=./target/release/reka-host
MODEL=$("$HOST" fetch | sed -n 1p)
# At most two malloc arenas: glibc's per-thread arenas (up to 8 per core) keep
# freed memory and make resident memory climb with the threads a run touches,
# which hid a leak's signal under ~20-40 MiB of noise (docs/RELIABILITY.md, Soak).
# A fixed mmap threshold (128 KiB): by default glibc raises it as large blocks
# are freed, after which the prefix cache's per-layer KV vectors (~100 KB each)
# come from the heap and, freed in any order, leave it fragmented: resident
# memory then stood 65-100 MiB above what the cache keeps with no leak (seen on
# 2 cores); mmapped, they go back to the system when freed (passes at ~0 MiB).
source scripts/serve-bg.sh
serve_in_background MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 -- --model "$MODEL" --model-name smollm2-135m
if ! "$HOST" soak --url "http://127.0.0.1:$PORT" --clients "${SOAK_CLIENTS:-4}" \
    --duration-s "${SOAK_SECONDS:-20}" --seed "${SOAK_SEED:-1}"; then
    echo "--- server log (last 50 lines) ---" >&2
    tail -n 50 "$LOG" >&2
    exit 1
fi
kill -0 $PID || { echo "the server died during the soak" >&2; cat "$LOG" >&2; exit 1; }
