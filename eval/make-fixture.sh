#!/usr/bin/env bash
# Regenerates the CI subset's reference log-likelihoods in tests/fixtures/eval/
# (the first 50 questions of reka_arc_easy and reka_hellaswag):
#   hf_loglikelihoods.json        lm-eval 0.4.13's own `hf` backend (transformers
#                                 reading the GGUF, de-quantized to float32, CPU)
#   llamacpp_loglikelihoods.json  lm-eval 0.4.13's local-completions backend
#                                 against eval/llamacpp_server.py (llama-cpp-python
#                                 over the same GGUF; ggml's quantized kernels)
# Each backend's per-task wall time is printed (and goes in the fixture README).
# Usage: eval/make-fixture.sh [hf|llamacpp|all] [GGUF]
#   GGUF defaults to $REKA_CACHE_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf.
# Environment: EVAL_OUT (keep lm-eval's raw output there), REKA_CACHE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

WHICH=${1:-all}
source eval/venvs.sh
GGUF=$(realpath "${2:-$EVAL_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf}")
TASKS=(reka_arc_easy reka_hellaswag)
LIMIT=50
FIXTURES=tests/fixtures/eval
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

ensure_eval_venv
ensure_hfeval_venv   # fixture.py needs transformers' GGUF tokenizer either way
EVAL_PYTHON=$EVAL_VENV/bin/python scripts/eval-data.sh

if [ -n "${EVAL_OUT:-}" ]; then
    OUT=$EVAL_OUT
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d)
fi
echo "make-fixture: lm-eval output in $OUT"

timed() { # timed LABEL LOG CMD...: run with output to LOG, print the wall time
    local label=$1 log=$2 start
    shift 2
    start=$(date +%s)
    "$@" >"$log" 2>&1
    echo "make-fixture: $label: $(($(date +%s) - start)) s (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
}

if [ "$WHICH" = hf ] || [ "$WHICH" = all ]; then
    for task in "${TASKS[@]}"; do
        timed "hf $task" "$OUT/hf-$task.log" "$HFEVAL_VENV/bin/lm_eval" run --model hf \
            --model_args "pretrained=$(dirname "$GGUF"),gguf_file=$(basename "$GGUF"),dtype=float32,add_bos_token=False" \
            --device cpu --batch_size 1 --tasks "$task" --include_path eval/tasks --limit $LIMIT \
            --log_samples --output_path "$OUT/hf/$task"
    done
    "$HFEVAL_VENV/bin/python" eval/fixture.py "$OUT/hf" "$GGUF" "$FIXTURES/hf_loglikelihoods.json"
fi

if [ "$WHICH" = llamacpp ] || [ "$WHICH" = all ]; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$HFEVAL_VENV/bin/python" eval/llamacpp_server.py "$GGUF" --port "$PORT" >"$OUT/llamacpp_server.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.5; done
    for task in "${TASKS[@]}"; do
        timed "llamacpp $task" "$OUT/llamacpp-$task.log" "$EVAL_VENV/bin/lm_eval" run --model local-completions \
            --model_args "model=smollm2-135m,base_url=http://127.0.0.1:$PORT/v1/completions,tokenizer_backend=remote,tokenized_requests=True,num_concurrent=1,max_retries=1" \
            --tasks "$task" --include_path eval/tasks --limit $LIMIT \
            --log_samples --output_path "$OUT/llamacpp/$task"
    done
    "$HFEVAL_VENV/bin/python" eval/fixture.py "$OUT/llamacpp" "$GGUF" "$FIXTURES/llamacpp_loglikelihoods.json"
fi
