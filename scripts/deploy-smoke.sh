#!/usr/bin/env bash
# Runs the image the way a Kubernetes pod would, without a container runtime
# (needs root: a private mount namespace and a chroot): the OCI layout's layers
# unpacked, the root read-only, /tmp a tmpfs, /proc mounted, the image's Env,
# WorkingDir, User, Entrypoint and Cmd, REKA_API_KEY set; the models either
# baked in (--tag VERSION-models) or bind-mounted read-only at /models from the
# models cache (--tag VERSION: the volume path). Then, over HTTP: /health
# without a key, a completion with `Authorization: Bearer`, and Spin's
# remote_http calls exactly as Spin's llm-remote-http sends them
# (`authorization: bearer <token>`, its POST /infer and /embed bodies);
# finally SIGTERM, which must end the server with status 0.
#
#   scripts/deploy-smoke.sh [--tag 0.1.0|0.1.0-models] [--layout deploy/out/oci] [--models-dir DIR]
# Build the layout first: scripts/deploy-image.sh [--with-models].
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=$version
layout=deploy/out/oci
models_dir=${REKA_CACHE_DIR:-$HOME/.cache/reka/models}
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift ;;
    --layout) layout=$2; shift ;;
    --models-dir) models_dir=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
mkdir -p "$root/proc"

# The pod: mounts, then env / cwd / user / command from the image config.
# Every step execs the next, so $pid ends up being reka-host itself.
python3 - "$tmp/config.json" "$root" "$port" "$token" "$models" "$models_dir" > "$tmp/pod.sh" <<'PY'
import json, shlex, sys
cfg, root, port, token, models, models_dir = sys.argv[1:]
c = json.load(open(cfg))["config"]
q = shlex.quote
env = [e for e in c["Env"] if not e.startswith("REKA_LISTEN=")]
env += [f"REKA_LISTEN=127.0.0.1:{port}", f"REKA_API_KEY={token}"]
uid, gid = c["User"].split(":")
print("set -e")
print(f"mount --bind {q(root)} {q(root)}")
print(f"mount -t tmpfs -o size=64m,mode=1777 tmpfs {q(root + '/tmp')}")
print(f"mount -t proc proc {q(root + '/proc')}")
if models == "volume":
    print(f"mount --bind {q(models_dir)} {q(root + '/models')}")
    print(f"mount -o remount,bind,ro {q(root + '/models')}")
print(f"mount -o remount,bind,ro {q(root)}")
print("exec env -i " + " ".join(map(q, env)) + f" /usr/bin/unshare --root={q(root)} --wd={q(c['WorkingDir'])}"
      f" --setgid {gid} --setuid {uid} " + " ".join(map(q, c["Entrypoint"] + c["Cmd"])))
PY
where=$([ "$models" = volume ] && echo "a read-only volume from $models_dir" || echo "the image")
echo "deploy-smoke: $layout:$tag, models from $where; read-only root, uid 65532, port $port"
unshare -m --propagation private sh "$tmp/pod.sh" > "$tmp/log" 2>&1 &
pid=$!
started=$(date +%s)
for _ in $(seq 1 360); do
  curl -sf "localhost:$port/health" > /dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/log"; echo "  FAIL the server exited before answering /health"; exit 1; }
  sleep 0.5
done
echo "  ok   /health answered $(( $(date +%s) - started )) s after start (models loaded, app compiled)"

fails=0
expect() { # name, wanted status, curl args...
  local name=$1 want=$2 got
  shift 2
  got=$(curl -s -o "$tmp/body" -w '%{http_code}' "$@" || true)
  if [ "$got" = "$want" ]; then
    echo "  ok   $name: $got $(head -c 200 "$tmp/body")"
  else
    echo "  FAIL $name: $got, want $want: $(head -c 300 "$tmp/body")"
    fails=$((fails + 1))
  fi
}
u=localhost:$port
expect "GET /health without a key" 200 "$u/health"
expect "GET /v1/models without a key" 401 "$u/v1/models"
expect "POST /v1/completions with Authorization: Bearer" 200 "$u/v1/completions" \
  -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}'
# What Spin's llm-remote-http (default api type) sends, header and body.
expect "POST /infer as Spin sends it (authorization: bearer)" 200 "$u/infer" \
  -H "authorization: bearer $token" \
  -d '{"model":"smollm2-135m","prompt":"Say hello.","options":{"maxTokens":8,"repeatPenalty":1.1,"repeatPenaltyLastNTokenCount":64,"temperature":0.0,"topK":40,"topP":0.9}}'
if grep -q 'all-minilm-l6-v2' "$root/etc/reka/runtime-config.toml" 2>/dev/null && ! grep -q '^#.*\[models.all-minilm' "$root/etc/reka/runtime-config.toml"; then
  expect "POST /embed as Spin sends it (authorization: bearer)" 200 "$u/embed" \
    -H "authorization: bearer $token" -d '{"model":"all-minilm-l6-v2","input":["hello","world"]}'
else
  echo "  skip POST /embed: the image's runtime config serves no embedding model"
fi
echo "  ok   peak resident memory $(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status")"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [ "$status" = 0 ]; then echo "  ok   SIGTERM: exited 0"; else echo "  FAIL SIGTERM: exit status $status"; fails=$((fails + 1)); fi
if [ "$fails" != 0 ]; then
  echo "deploy-smoke: $fails failure(s); server log:"
  tail -20 "$tmp/log"
  exit 1
fi
