#!/usr/bin/env bash
# Offline checks of the deployment files (docs/DEPLOY.md), no cluster needed:
#  1. every Kubernetes manifest (deploy/k8s, rendered per kustomization, and
#     the files applied by hand) against the Kubernetes OpenAPI schemas that
#     kubernetes-validate ships, strictly; the SpinApp against spin-operator's
#     CRD schema (deploy/spinkube/crd) with jsonschema; cross-checks of names,
#     ports, secrets, probes, pod security, runtime configs and model pins
#     (deploy/check/validate.py);
#  2. if the release binary and app exist: the image (scripts/deploy-image.sh)
#     builds reproducibly (two builds, one digest), its digests check out, and
#     the binary runs from the unpacked layer with only the layer's libraries
#     and loader (and, as root, chrooted into it as the image's user), and the
#     Spin LLM provider is where the image's REKA_LLM_WASM says.
# The tools live in a venv under ~/.cache/reka (created on first use from
# PyPI, pinned). Quick: a few seconds once the venv exists. Exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${REKA_DEPLOY_VENV:-$HOME/.cache/reka/deploy-venv}
# The tools, and what they pull in, pinned.
reqs="kubernetes-validate==1.37.0 jsonschema==4.26.0 pyyaml==6.0.3 jsonschema-specifications==2025.9.1
referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0 importlib_resources==7.1.0 packaging==26.4 typing_extensions==4.16.0"
if [ "$(cat "$venv/.reka-requirements" 2>/dev/null)" != "$reqs" ]; then
  echo "deploy-check: creating $venv ("$reqs")"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $reqs
  echo "$reqs" > "$venv/.reka-requirements"
fi

"$venv/bin/python" deploy/check/validate.py

echo "image (scripts/deploy-image.sh):"
binary=target/release/reka-host
if [ ! -x "$binary" ] || [ ! -f target/wasm/reka-app.wasm ] || [ ! -f target/wasm/reka-llm.wasm ]; then
  echo "  skip no $binary or target/wasm/{reka-app,reka-llm}.wasm: image not built (cargo build --release -p reka-host)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "  FAIL $*"; exit 1; }
# Stage the inputs once, so a rebuild of the binary under us cannot make the
# two builds differ.
mkdir -p "$tmp/app/target/wasm"
cp "$binary" "$tmp/reka-host"
cp spin.toml "$tmp/app/spin.toml"
# Every component source spin.toml names (target/wasm/...).
for source in $(sed -n 's/^source = "\(target\/wasm\/[^"]*\)"$/\1/p' spin.toml); do
  cp "$source" "$tmp/app/$source"
done
cp target/wasm/reka-llm.wasm "$tmp/reka-llm.wasm"
for n in a b; do
  scripts/deploy-image.sh --binary "$tmp/reka-host" --llm-wasm "$tmp/reka-llm.wasm" --manifest "$tmp/app/spin.toml" \
    --out "$tmp/oci-$n" --tag check > "$tmp/$n.json" 2> "$tmp/$n.err" || { cat "$tmp/$n.err"; fail "deploy-image.sh"; }
done
summary=$tmp/oci-a/check.summary.json
digest() { "$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifest_digest"])' "$1"; }
da=$(digest "$summary"); db=$(digest "$tmp/oci-b/check.summary.json")
[ "$da" = "$db" ] || fail "two builds of the same inputs differ: $da vs $db"
"$venv/bin/python" - "$summary" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
mb = lambda n: f"{n / 1e6:.1f} MB"
print(f"  ok   builds reproducibly: {s['manifest_digest']}; {mb(s['compressed_bytes'])} compressed, {mb(s['uncompressed_bytes'])} uncompressed")
print(f"  ok   layer holds the loader {s['loader']} and what ldd lists: {' '.join(s['libraries'])}")
PY
root=$tmp/root
"$venv/bin/python" deploy/image/build_oci.py --out "$tmp/oci-a" --tag check --verify "$root" > "$tmp/config.json" \
  || fail "layout digests (manifest, config, layers, diff_ids)"
echo "  ok   layout digests and sizes match (blobs, config diff_ids); layer unpacked"
llm=$("$venv/bin/python" -c '
import json, sys
env = dict(e.split("=", 1) for e in json.load(open(sys.argv[1]))["config"]["Env"])
print(env.get("REKA_LLM_WASM", ""))' "$tmp/config.json")
[ -n "$llm" ] || fail "the image config's Env has no REKA_LLM_WASM (Spin apps importing fermyon:spin/llm would not load)"
cmp -s "$root$llm" "$tmp/reka-llm.wasm" || fail "REKA_LLM_WASM=$llm is not target/wasm/reka-llm.wasm in the layer"
echo "  ok   Env REKA_LLM_WASM=$llm: the Spin LLM provider, target/wasm/reka-llm.wasm, is there"
loader=$(sed -n 's/.*"loader": "\(.*\)".*/\1/p' "$summary")
libpath=$("$venv/bin/python" -c '
import json, os, sys
s = json.load(open(sys.argv[1]))
print(":".join(sorted({sys.argv[2] + os.path.dirname(l) for l in s["libraries"]})))' "$summary" "$root")
bin=$root/usr/local/bin/reka-host
# The loader of the layer, told to search only the layer's folders (no
# ld.so.cache); anything it still resolves outside the layer is missing there.
listing=$(env -i "$root$loader" --inhibit-cache --library-path "$libpath" --list "$bin") || fail "loader --list: $listing"
outside=$(echo "$listing" | awk '/=>/ { print $3 }' | grep -v "^$root/" || true)
[ -z "$outside" ] || fail "libraries resolved outside the layer: $outside"
echo "  ok   every library resolves inside the layer ($(echo "$listing" | grep -c '=>') entries)"
v=$(env -i "$root$loader" --inhibit-cache --library-path "$libpath" "$bin" --version) || fail "$bin --version through the layer's loader"
echo "  ok   runs with only the layer's loader and libraries: $v"
chroot=$(command -v chroot || true)
if [ "$(id -u)" = 0 ] && [ -n "$chroot" ]; then
  v=$(env -i "$chroot" --userspec=65532:65532 "$root" /usr/local/bin/reka-host --version) || fail "chroot $root as 65532: reka-host --version"
  echo "  ok   runs chrooted into the layer as uid 65532 (the image's user): $v"
else
  echo "  skip chroot run (needs root)"
fi
