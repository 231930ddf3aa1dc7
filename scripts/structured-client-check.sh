#!/usr/bin/env bash
# Structured output and tool calling (issue 19) through real Python clients:
# serves the default model (SmolLM2-135M-Instruct, found through `reka-host
# fetch`) on a free loopback port and runs tests/clients/structured.py against
# it: openai's parse/stream helpers, instructor (TOOLS and JSON modes), tool
# calls with a tool result sent back (plain and streamed) and langchain-openai's
# bind_tools and with_structured_output. The clients live in their own venv
# under ~/.cache/reka (pip, exact pins in tests/clients/requirements.txt;
# reinstalled when that file changes). Needs target/release/reka-host.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pinned-venv.sh
pinned_venv structured-venv tests/clients/requirements.txt
MODEL=$(./target/release/reka-host fetch | grep '\.gguf$' | head -1)
source scripts/serve-bg.sh
serve_in_background -- --model "$MODEL" --model-name smollm2-135m
if ! "$VENV/bin/python" tests/clients/structured.py "http://127.0.0.1:$PORT"; then
    echo "--- server log (last 50 lines) ---" >&2
    tail -n 50 "$LOG" >&2
    exit 1
fi
