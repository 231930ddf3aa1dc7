#!/usr/bin/env bash
# Reka Edge over HTTP with the official `openai` Python client, with API keys: serves the tiny
# Reka Edge fixture (tests/fixtures/reka_edge) on a free loopback port and runs
# tests/openai_client/reka_edge.py against it. The client lives in its own venv
# under ~/.cache/reka (pip, pinned). Needs target/release/reka-host.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${REKA_CACHE_DIR:-$HOME/.cache/reka}/openai-venv"
if ! "$VENV/bin/python" -c 'import openai' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'openai==3.57.0'
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
# Two API keys (comma-separated, as REKA_API_KEY takes several); the client
# uses the second and checks that a wrong one gets 401.
REKA_API_KEY="first-key,second-key" ./target/release/reka-host serve --listen "127.0.0.1:$PORT" --model tests/fixtures/reka_edge \
    --model-name reka-edge-tiny --dtype f32 >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 120); do
    if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; then break; fi
    if ! kill -0 $PID 2>/dev/null; then cat "$LOG"; exit 1; fi
    sleep 0.5
done
OPENAI_API_KEY=second-key "$VENV/bin/python" tests/openai_client/reka_edge.py "http://127.0.0.1:$PORT"
