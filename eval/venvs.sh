# Sourced by scripts/eval.sh, scripts/eval-check.sh and eval/make-fixture.sh:
# makes (once) and names the two Python environments lm-eval runs in.
#
#   EVAL_VENV    $REKA_CACHE_DIR/evalvenv: lm-eval[api]==0.4.13 alone, for the
#                API backends (local-completions, local-chat-completions).
#   HFEVAL_VENV  $REKA_CACHE_DIR/hfevalvenv: lm-eval[api]==0.4.13 + accelerate
#                for lm-eval's `hf` backend, layered over the existing tokvenv
#                ($REKA_CACHE_DIR/tokvenv: torch 2.10.0, transformers 4.57.6,
#                gguf 0.19.0, numpy 2.2.6). A fresh venv whose site-packages
#                holds a .pth line naming tokvenv's site-packages, so torch and
#                transformers are imported from tokvenv without a second
#                multi-GB copy; pip installs lm-eval into the new venv under a
#                constraints file pinning torch/transformers/gguf/numpy/
#                tokenizers/safetensors/huggingface_hub to tokvenv's versions,
#                and pip never uninstalls anything outside the venv it runs
#                in, so tokvenv is left as it is (checked: its `pip freeze` is
#                compared before and after).
# Both are made from the same base interpreter as tokvenv (python3.11).

EVAL_CACHE=${REKA_CACHE_DIR:-$HOME/.cache/reka}
EVAL_VENV=$EVAL_CACHE/evalvenv
HFEVAL_VENV=$EVAL_CACHE/hfevalvenv
TOK_VENV=$EVAL_CACHE/tokvenv
LM_EVAL_VERSION=0.4.13

_lm_eval_ok() {
    [ -x "$1/bin/lm_eval" ] &&
        [ "$("$1/bin/python" -c 'import importlib.metadata as m; print(m.version("lm_eval"))' 2>/dev/null)" = "$LM_EVAL_VERSION" ]
}

ensure_eval_venv() {
    if _lm_eval_ok "$EVAL_VENV"; then return 0; fi
    echo "eval: making $EVAL_VENV (lm-eval[api]==$LM_EVAL_VERSION)" >&2
    [ -x "$EVAL_VENV/bin/python" ] || python3 -m venv "$EVAL_VENV"
    "$EVAL_VENV/bin/pip" install --quiet "lm-eval[api]==$LM_EVAL_VERSION" >&2
}

ensure_hfeval_venv() {
    if _lm_eval_ok "$HFEVAL_VENV" && "$HFEVAL_VENV/bin/python" -c 'import torch, transformers, gguf, accelerate' 2>/dev/null; then
        return 0
    fi
    if [ ! -x "$TOK_VENV/bin/python" ] || ! "$TOK_VENV/bin/python" -c 'import torch, transformers, gguf' 2>/dev/null; then
        echo "eval: ERROR: the hf backend needs $TOK_VENV with torch, transformers and gguf" >&2
        return 1
    fi
    echo "eval: making $HFEVAL_VENV (lm-eval[api]==$LM_EVAL_VERSION + accelerate over $TOK_VENV)" >&2
    local base site constraints before after
    base=$("$TOK_VENV/bin/python" -c 'import sys; print(sys._base_executable)')
    [ -x "$HFEVAL_VENV/bin/python" ] || "$base" -m venv "$HFEVAL_VENV"
    site=$("$TOK_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" >"$("$HFEVAL_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_reka_tokvenv.pth"
    constraints=$(mktemp)
    "$TOK_VENV/bin/python" - >"$constraints" <<'EOF'
import importlib.metadata as m
for name in ("torch", "transformers", "gguf", "numpy", "tokenizers", "safetensors", "huggingface_hub"):
    print(f"{name}=={m.version(name).split('+')[0]}")
EOF
    before=$("$TOK_VENV/bin/pip" freeze)
    "$HFEVAL_VENV/bin/pip" install --quiet -c "$constraints" "lm-eval[api]==$LM_EVAL_VERSION" accelerate >&2
    rm -f "$constraints"
    after=$("$TOK_VENV/bin/pip" freeze)
    if [ "$before" != "$after" ]; then
        echo "eval: ERROR: installing into $HFEVAL_VENV changed $TOK_VENV:" >&2
        diff <(echo "$before") <(echo "$after") >&2 || true
        return 1
    fi
}
