#!/usr/bin/env bash
# Checks a running server's log-likelihoods against lm-eval's own `hf` backend:
# runs lm-eval 0.4.13 (local-completions, the server's /tokenize, tokenized
# requests, echoed logprobs) on the CI subset of tests/fixtures/eval (the first
# 50 questions of reka_arc_easy and reka_hellaswag), then eval/compare.py
# against tests/fixtures/eval/hf_loglikelihoods.json. Fails when any choice's
# log-likelihood is off by more than EVAL_TOL nats (default 0.05) or when the
# runs cannot be compared.
#
# Usage: scripts/eval-check.sh URL      (e.g. http://127.0.0.1:8080)
# Environment: EVAL_MODEL (served model name, smollm2-135m), EVAL_TOL,
#   EVAL_MAX_ARGMAX_DIFFS (most predicted-answer disagreements per task; not
#   checked by default), EVAL_CONCURRENT (4), EVAL_FIXTURE (the reference JSON;
#   tests/fixtures/eval/llamacpp_loglikelihoods.json is the llama.cpp one),
#   EVAL_OUT (keep the lm-eval output there instead of a temporary
#   directory), REKA_CACHE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

URL=${1:?usage: scripts/eval-check.sh URL (a running server, e.g. http://127.0.0.1:8080)}
URL=${URL%/}
URL=${URL%/v1/completions}
URL=${URL%/v1/chat/completions}
URL=${URL%/v1}
MODEL=${EVAL_MODEL:-smollm2-135m}
FIXTURE=${EVAL_FIXTURE:-tests/fixtures/eval/hf_loglikelihoods.json}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

source eval/venvs.sh
ensure_eval_venv
EVAL_PYTHON=$EVAL_VENV/bin/python scripts/eval-data.sh >&2

# The fixture's tasks and how many questions of each it holds.
read -r TASKS LIMIT < <("$EVAL_VENV/bin/python" - "$FIXTURE" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
sizes = {len(v) for v in data.values()}
assert len(sizes) == 1, f"tasks of {sys.argv[1]} hold different numbers of questions: {sizes}"
print(",".join(data), sizes.pop())
EOF
)

if [ -n "${EVAL_OUT:-}" ]; then
    OUT=$EVAL_OUT
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d)
    trap 'rm -rf "$OUT"' EXIT
fi

echo "eval-check: $TASKS, first $LIMIT questions each, against $URL ($MODEL)"
if ! "$EVAL_VENV/bin/lm_eval" run --model local-completions \
    --model_args "model=$MODEL,base_url=$URL/v1/completions,tokenizer_backend=remote,tokenized_requests=True,num_concurrent=${EVAL_CONCURRENT:-4},max_retries=1" \
    --tasks "$TASKS" --include_path eval/tasks --limit "$LIMIT" \
    --log_samples --output_path "$OUT" >"$OUT/lm-eval.log" 2>&1; then
    echo "eval-check: lm-eval failed; last lines of its log:" >&2
    tail -25 "$OUT/lm-eval.log" >&2
    exit 2
fi
"$EVAL_VENV/bin/python" eval/compare.py "$FIXTURE" "$OUT"
