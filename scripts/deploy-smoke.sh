#!/usr/bin/env bash
# Runs the image the way a Kubernetes pod would, without a container runtime
# (needs root: a private mount namespace and a chroot): the OCI layout's layers
# unpacked, the root read-only, /tmp a tmpfs, /proc mounted, the image's Env,
# WorkingDir, User, Entrypoint and Cmd, REKA_API_KEY set; the models either
# baked in (--tag VERSION-models) or bind-mounted read-only at /models from the
# models cache (--tag VERSION: the volume path). Then, over HTTP:
#  1. the image's own Cmd: /health without a key, /v1/models without one (401),
#     a completion with `Authorization: Bearer`; Spin's remote_http calls
#     exactly as Spin's llm-remote-http sends them (`authorization: bearer
#     <token>`, no content-type, its POST /infer and /embed bodies, the model
#     names Spin apps use: `llama2-chat`, an alias, and `all-minilm-l6-v2`);
#     OpenAI's /v1/embeddings (the same vector as /embed); SIGTERM, which must
#     end the server with status 0;
#  2. if examples/spin-llm is built: that Spin app (spin-sdk 7, its wasm
#     unchanged) served by the image's reka-host from a read-only volume, as a
#     pod with `args: [serve, --manifest, ...]` would (its manifest given the
#     image's reka-app.wasm, and a /health route for the probes); its
#     llm::infer and llm::generate_embeddings go through the Spin LLM provider
#     the image carries (REKA_LLM_WASM), and a model outside its ai_models is
#     refused.
#
#   scripts/deploy-smoke.sh [--tag 0.1.0|0.1.0-models] [--layout deploy/out/oci] [--models-dir DIR]
# Build the layout first: scripts/deploy-image.sh [--with-models].
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=$version
layout=deploy/out/oci
models_dir=${REKA_CACHE_DIR:-$HOME/.cache/reka/models}
spin_app=examples/spin-llm
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift ;;
    --layout) layout=$2; shift ;;
    --models-dir) models_dir=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "deploy-smoke: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "deploy-smoke: needs root (mount namespace + chroot)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
root=$tmp/root
python3 deploy/image/build_oci.py --out "$layout" --tag "$tag" --verify "$root" > "$tmp/config.json"
models=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["Labels"].get("dev.reka.models"))' "$tmp/config.json")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=smoke-$RANDOM$RANDOM
mkdir -p "$root/proc" "$root/srv/app"
u=localhost:$port
fails=0

# The pod: mounts, then env / cwd / user / command from the image config.
# Every step execs the next, so $pid ends up being reka-host itself.
# pod_start LOG [APP_DIR [ARGS...]]: APP_DIR (or "") is mounted read-only at
# /srv/app; ARGS replace the image's Cmd (a pod's `args`).
pod_start() {
  local log=$1 app=${2:-}
  shift $(( $# < 2 ? $# : 2 ))
  python3 - "$tmp/config.json" "$root" "$port" "$token" "$models" "$models_dir" "$app" "$@" > "$tmp/pod.sh" <<'PY'
import json, shlex, sys
cfg, root, port, token, models, models_dir, app, *args = sys.argv[1:]
c = json.load(open(cfg))["config"]
q = shlex.quote
env = [e for e in c["Env"] if not e.startswith("REKA_LISTEN=")]
env += [f"REKA_LISTEN=127.0.0.1:{port}", f"REKA_API_KEY={token}"]
uid, gid = c["User"].split(":")
print("set -e")
print(f"mount --bind {q(root)} {q(root)}")
print(f"mount -t tmpfs -o size=64m,mode=1777 tmpfs {q(root + '/tmp')}")
print(f"mount -t proc proc {q(root + '/proc')}")
for src, dst in ([(models_dir, "/models")] if models == "volume" else []) + ([(app, "/srv/app")] if app else []):
    print(f"mount --bind {q(src)} {q(root + dst)}")
    print(f"mount -o remount,bind,ro {q(root + dst)}")
print(f"mount -o remount,bind,ro {q(root)}")
print("exec env -i " + " ".join(map(q, env)) + f" /usr/bin/unshare --root={q(root)} --wd={q(c['WorkingDir'])}"
      f" --setgid {gid} --setuid {uid} " + " ".join(map(q, c["Entrypoint"] + (args or c["Cmd"]))))
PY
  unshare -m --propagation private sh "$tmp/pod.sh" > "$log" 2>&1 &
  pid=$!
  local started ready=
  started=$(date +%s)
  for _ in $(seq 1 360); do
    if curl -sf "$u/health" > /dev/null; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "  FAIL the server exited before answering /health"; exit 1; }
    sleep 0.5
  done
  [ -n "$ready" ] || { tail -5 "$log"; echo "  FAIL no 200 from /health in 180 s"; exit 1; }
  echo "  ok   /health answered $(( $(date +%s) - started )) s after start (models loaded, app compiled)"
}

# pod_stop LOG: peak memory, then SIGTERM, which must end reka-host with 0.
pod_stop() {
  echo "  ok   peak resident memory $(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status")"
  kill -TERM "$pid"
  local status=0
  wait "$pid" || status=$?
  pid=
  if [ "$status" = 0 ]; then echo "  ok   SIGTERM: exited 0"; else echo "  FAIL SIGTERM: exit status $status"; fails=$((fails + 1)); fi
  if [ "$fails" != 0 ]; then
    echo "deploy-smoke: $fails failure(s); server log:"
    tail -20 "$1"
    exit 1
  fi
}

# expect NAME STATUS [PYTHON-CHECK] -- CURL-ARGS...: the status, and the
# Python expression (over b, the JSON body) if given, must hold.
expect() {
  local name=$1 want=$2 cond=true got
  shift 2
  if [ "$1" != -- ]; then cond=$1; shift; fi
  shift
  got=$(curl -s -o "$tmp/body" -w '%{http_code}' "$@" || true)
  if [ "$got" = "$want" ] && python3 -c '
import json, sys
b = json.load(open(sys.argv[1])) if sys.argv[2] != "true" else None
sys.exit(0 if sys.argv[2] == "true" or eval(sys.argv[2]) else 1)' "$tmp/body" "$cond" 2> /dev/null; then
    echo "  ok   $name: $got $(head -c 160 "$tmp/body" | tr '\n' ' ')"
  else
    echo "  FAIL $name: $got, want $want${cond:+ and $cond}: $(head -c 300 "$tmp/body")"
    fails=$((fails + 1))
  fi
}

where=$([ "$models" = volume ] && echo "a read-only volume from $models_dir" || echo "the image")
echo "deploy-smoke: $layout:$tag, models from $where; read-only root, uid 65532, port $port"
echo "1. the image's Cmd ($(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]; print(" ".join(c["Entrypoint"] + c["Cmd"]))' "$tmp/config.json"))"
pod_start "$tmp/log"
expect "GET /health without a key" 200 -- "$u/health"
expect "GET /v1/models without a key" 401 -- "$u/v1/models"
expect "GET /v1/models lists the alias llama2-chat" 200 '"llama2-chat" in {m["id"] for m in b["data"]}' -- \
  "$u/v1/models" -H "Authorization: Bearer $token"
expect "POST /v1/completions with Authorization: Bearer" 200 'b["choices"][0]["text"]' -- "$u/v1/completions" \
  -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}'
# What Spin's llm-remote-http (default api type) sends: `authorization: bearer`
# and the JSON body, no content-type (curl's -d would add a form one).
spin=(-H "authorization: bearer $token" -H 'Content-Type:')
expect "POST /infer as Spin sends it (bearer, no content-type, model llama2-chat)" 200 \
  'isinstance(b["text"], str) and b["usage"]["promptTokenCount"] > 0 and 0 < b["usage"]["generatedTokenCount"] <= 8' -- \
  "$u/infer" "${spin[@]}" \
  -d '{"model":"llama2-chat","prompt":"Say hello.","options":{"maxTokens":8,"repeatPenalty":1.1,"repeatPenaltyLastNTokenCount":64,"temperature":0.0,"topK":40,"topP":0.9}}'
expect "POST /embed as Spin sends it (bearer, no content-type, model all-minilm-l6-v2)" 200 \
  'len(b["embeddings"]) == 2 and all(len(v) == 384 for v in b["embeddings"]) and b["usage"]["promptTokenCount"] > 0' -- \
  "$u/embed" "${spin[@]}" -d '{"model":"all-minilm-l6-v2","input":["hello","world"]}'
cp "$tmp/body" "$tmp/spin-embed.json"
expect "POST /v1/embeddings (OpenAI): the same vector as /embed" 200 \
  'max(abs(x - y) for x, y in zip(b["data"][0]["embedding"], json.load(open("'"$tmp/spin-embed.json"'"))["embeddings"][0])) < 1e-6 and len(b["data"][0]["embedding"]) == 384' -- \
  "$u/v1/embeddings" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"model":"all-minilm-l6-v2","input":"hello"}'
pod_stop "$tmp/log"

wasm=$spin_app/target/wasm32-wasip2/release/spin_llm_example.wasm
if [ ! -f "$wasm" ]; then
  echo "2. skip the Spin app: $wasm is not built (cd $spin_app && cargo build --target wasm32-wasip2 --release)"
  exit 0
fi
# The app as a volume would hold it: its spin.toml and wasm. Its OpenAI
# component is the image's own app (the example names it by a path in this
# repository, ../../target/wasm/reka-app.wasm), which also answers the probes'
# /health (the example routes only /app/... and /v1/...; reka-host's /health
# is the app's).
app=$tmp/spin-app
mkdir -p "$app/$(dirname "${wasm#"$spin_app/"}")"
cp "$wasm" "$app/${wasm#"$spin_app/"}"
{
  sed 's|^source = "../../target/wasm/reka-app.wasm"|source = "/app/target/wasm/reka-app.wasm"|' "$spin_app/spin.toml"
  printf '\n[[trigger.http]]\nroute = "/health"\ncomponent = "reka"\n'
} > "$app/spin.toml"
grep -q '^source = "/app/target/wasm/reka-app.wasm"' "$app/spin.toml" || { echo "  FAIL $spin_app/spin.toml: no reka-app.wasm source to point at the image's"; exit 1; }
echo "2. the Spin app $spin_app (ai_models $(sed -n 's/^ai_models = //p' "$spin_app/spin.toml")) from a read-only volume at /srv/app:" \
  "serve --manifest /srv/app/spin.toml --runtime-config /etc/reka/runtime-config.toml"
pod_start "$tmp/log2" "$app" serve --manifest /srv/app/spin.toml --runtime-config /etc/reka/runtime-config.toml
if grep -q 'Spin LLM provider is plugged in' "$tmp/log2"; then
  echo "  ok   log: the Spin LLM provider (REKA_LLM_WASM) is plugged in"
else
  echo "  FAIL the log does not say the Spin LLM provider is plugged in"; fails=$((fails + 1))
fi
key=(-H "Authorization: Bearer $token")
expect "POST /app/infer: llm::infer_with_options(Llama2Chat) through the provider" 200 \
  'b["text"] and 0 < b["generated_tokens"] <= 8' -- \
  "$u/app/infer" "${key[@]}" -d '{"prompt":"The three primary colours are","max_tokens":8,"temperature":0}'
expect "POST /app/embed: llm::generate_embeddings(AllMiniLmL6V2)" 200 \
  'len(b["embeddings"]) == 1 and len(b["embeddings"][0]) == 384' -- \
  "$u/app/embed" "${key[@]}" -d '{"sentences":["A cat sits on the mat."]}'
expect "POST /app/infer with a model outside ai_models: refused as Spin does" 400 \
  '"does not have access" in b["error"]' -- \
  "$u/app/infer" "${key[@]}" -d '{"prompt":"hi","model":"smollm2-135m","max_tokens":4}'
pod_stop "$tmp/log2"
