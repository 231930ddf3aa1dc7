#!/usr/bin/env bash
# Runs lm-evaluation-harness (0.4.13) against reka-host: starts
# target/release/reka-host on a free loopback port serving MODEL, runs the
# reka_* tasks of eval/tasks through lm-eval's OpenAI-compatible backends
# (multiple-choice tasks: local-completions with the server's /tokenize and
# echoed logprobs; reka_gsm8k: local-chat-completions with the chat template),
# optionally runs the same tasks through lm-eval's own `hf` backend on the same
# GGUF (EVAL_HF=1), and writes eval/results/<timestamp>/table.md (value ±
# stderr of both, wall time of each task) and prints it. Stops the server on exit.
#
# Usage: scripts/eval.sh [MODEL] [TASKS] [LIMIT]
#   MODEL  a model name of runtime-config.toml (default smollm2-135m), or a path
#          to a .gguf (served under its file name without .gguf)
#   TASKS  comma-separated (default reka_mmlu,reka_arc_easy,reka_arc_challenge,reka_hellaswag,reka_gsm8k)
#   LIMIT  lm-eval --limit: questions per task (per MMLU subject), or a fraction
# Environment: EVAL_HF=1 (also run the hf backend), EVAL_HF_BATCH (hf batch
#   size, 1), EVAL_CONCURRENT (requests in flight, 4), PORT (default: a free
#   one), REKA_CACHE_DIR (~/.cache/reka), EVAL_OUT (run directory),
#   EVAL_SERVER_URL (evaluate a server that is already running there, serving
#   MODEL, instead of starting reka-host; e.g. eval/llamacpp_server.py).
# Data: scripts/eval-data.sh; venvs: eval/venvs.sh. Details: docs/EVAL.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODEL=${1:-smollm2-135m}
TASKS=${2:-reka_mmlu,reka_arc_easy,reka_arc_challenge,reka_hellaswag,reka_gsm8k}
LIMIT=${3:-}
GENERATION_TASKS=reka_gsm8k
CONCURRENT=${EVAL_CONCURRENT:-4}
HOST=./target/release/reka-host

# No Hugging Face hub at any point: everything is local.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

source eval/venvs.sh
ensure_eval_venv
if [ "${EVAL_HF:-0}" = 1 ]; then ensure_hfeval_venv; fi
EVAL_PYTHON=$EVAL_VENV/bin/python scripts/eval-data.sh

if [ -z "${EVAL_SERVER_URL:-}" ] && [ ! -x "$HOST" ]; then
    echo "eval: $HOST is missing (cargo build --release)" >&2
    exit 1
fi

# The GGUF and the name it is served under.
if [[ "$MODEL" == *.gguf ]]; then
    GGUF=$(realpath "$MODEL")
    NAME=$(basename "$MODEL" .gguf)
else
    NAME=$MODEL
    GGUF=$("$EVAL_VENV/bin/python" - "$NAME" <<'EOF'
import os, sys, tomllib
cfg = tomllib.load(open("runtime-config.toml", "rb"))
model = cfg.get("models", {}).get(sys.argv[1])
if model is None:
    sys.exit(f"eval: {sys.argv[1]!r} is not a model of runtime-config.toml ({', '.join(cfg.get('models', {}))}) nor a .gguf path")
print(os.path.expanduser(model["path"]))
EOF
)
fi
[ -f "$GGUF" ] || { echo "eval: $GGUF is missing (reka-host fetch puts the default model there)" >&2; exit 1; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${EVAL_OUT:-$ROOT/eval/results/$STAMP}
mkdir -p "$OUT/raw"
: >"$OUT/times.tsv"
SERVER=
if [ -n "${EVAL_SERVER_URL:-}" ]; then
    BASE=${EVAL_SERVER_URL%/}
    BASE=${BASE%/v1}
    SERVED_BY="the server at $BASE"
else
    PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    BASE=http://127.0.0.1:$PORT
    "$HOST" serve --listen "127.0.0.1:$PORT" --model "$GGUF" --model-name "$NAME" >"$OUT/server.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
    trap 'exit 130' INT TERM
    SERVED_BY="reka-host ($(git rev-parse --short HEAD))"
fi
for _ in $(seq 1 240); do
    if curl -fsS "$BASE/health" >/dev/null 2>&1; then break; fi
    if [ -n "$SERVER" ] && ! kill -0 "$SERVER" 2>/dev/null; then
        echo "eval: the server exited; its log:" >&2
        tail -30 "$OUT/server.log" >&2
        exit 1
    fi
    sleep 0.5
done
curl -fsS "$BASE/health" >/dev/null || { echo "eval: no /health from $BASE after 120 s" >&2; exit 1; }
echo "eval: $SERVED_BY serving $NAME ($GGUF) on $BASE; results in $OUT"

HF_ARGS="pretrained=$(dirname "$GGUF"),gguf_file=$(basename "$GGUF"),dtype=float32,add_bos_token=False"
cat >"$OUT/run.json" <<EOF
{"model": "$NAME", "gguf": "$GGUF", "served_by": "$SERVED_BY", "tasks": $(printf '%s' "$TASKS" | "$EVAL_VENV/bin/python" -c 'import json,sys; print(json.dumps(sys.stdin.read().split(",")))'),
 "generation_tasks": ["$GENERATION_TASKS"], "limit": "$LIMIT", "concurrent": $CONCURRENT,
 "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo +dirty)",
 "lm_eval": "$LM_EVAL_VERSION",
 "hf": "$([ "${EVAL_HF:-0}" = 1 ] && echo "lm-eval hf backend, $HF_ARGS, device cpu, batch size ${EVAL_HF_BATCH:-1}")"}
EOF

LIMIT_ARGS=()
[ -n "$LIMIT" ] && LIMIT_ARGS=(--limit "$LIMIT")
FAILED=0

# run BACKEND TASK LM_EVAL_ARGS...: one lm-eval run, timed, its log beside the results.
run() {
    local backend=$1 task=$2
    shift 2
    local dir=$OUT/raw/$backend/$task start rc
    mkdir -p "$dir"
    echo "eval: $backend $task ..."
    start=$(date +%s%N)
    set +e
    "$@" --tasks "$task" --include_path eval/tasks "${LIMIT_ARGS[@]}" \
        --log_samples --output_path "$dir" >"$dir/lm-eval.log" 2>&1
    rc=$?
    set -e
    local ms=$((($(date +%s%N) - start) / 1000000))
    printf '%s\t%s\t%d.%d\t%d\n' "$backend" "$task" $((ms / 1000)) $((ms % 1000 / 100)) $rc >>"$OUT/times.tsv"
    if [ $rc -ne 0 ]; then
        FAILED=1
        echo "eval: $backend $task failed (exit $rc); last lines of $dir/lm-eval.log:" >&2
        tail -15 "$dir/lm-eval.log" >&2
    fi
}

IFS=, read -r -a TASK_LIST <<<"$TASKS"
for task in "${TASK_LIST[@]}"; do
    if [[ ",$GENERATION_TASKS," == *",$task,"* ]]; then
        run server "$task" "$EVAL_VENV/bin/lm_eval" run --model local-chat-completions \
            --model_args "model=$NAME,base_url=$BASE/v1/chat/completions,num_concurrent=$CONCURRENT,max_retries=1" \
            --apply_chat_template
    else
        run server "$task" "$EVAL_VENV/bin/lm_eval" run --model local-completions \
            --model_args "model=$NAME,base_url=$BASE/v1/completions,tokenizer_backend=remote,tokenized_requests=True,num_concurrent=$CONCURRENT,max_retries=1"
    fi
done

if [ "${EVAL_HF:-0}" = 1 ]; then
    # The server is not needed by the hf backend; free its cores.
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    for task in "${TASK_LIST[@]}"; do
        extra=()
        [[ ",$GENERATION_TASKS," == *",$task,"* ]] && extra=(--apply_chat_template)
        run hf "$task" "$HFEVAL_VENV/bin/lm_eval" run --model hf --model_args "$HF_ARGS" \
            --device cpu --batch_size "${EVAL_HF_BATCH:-1}" "${extra[@]}"
    done
fi

"$EVAL_VENV/bin/python" eval/table.py "$OUT"
exit $FAILED
