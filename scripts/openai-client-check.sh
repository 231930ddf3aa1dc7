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
# Two API keys (comma-separated, as REKA_API_KEY takes several); the client
# uses the second and checks that a wrong one gets 401.
source scripts/serve-bg.sh
serve_in_background REKA_API_KEY="first-key,second-key" -- --model tests/fixtures/reka_edge \
    --model-name reka-edge-tiny --dtype f32
OPENAI_API_KEY=second-key "$VENV/bin/python" tests/openai_client/reka_edge.py "http://127.0.0.1:$PORT"
