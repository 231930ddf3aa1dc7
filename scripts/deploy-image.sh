#!/usr/bin/env bash
# Builds the reka-host OCI image without pulling any base image: one layer
# with the release binary (stripped copy), the shared libraries ldd finds for
# it and the dynamic loader, the Spin LLM provider target/wasm/reka-llm.wasm
# (REKA_LLM_WASM in the image's Env), spin.toml + target/wasm/reka-app.wasm,
# the runtime config deploy/image/runtime-config.toml and a non-root user; with
# --with-models a second layer holds the model files that config names
# (language and embedding models).
# Output: an OCI image layout in deploy/out/oci (tags VERSION and
# VERSION-models), reproducible (same inputs, same digests). See docs/DEPLOY.md.
#
#   scripts/deploy-image.sh [--with-models] [--models-dir DIR] [--tag TAG]
#                           [--runtime-config FILE] [--binary FILE] [--no-strip]
#                           [--llm-wasm FILE] [--manifest spin.toml] [--out DIR]
#   skopeo inspect oci:deploy/out/oci:0.1.0
#   skopeo copy oci:deploy/out/oci:0.1.0 docker://REGISTRY/reka-host:0.1.0
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
# Paths given on the command line are relative to where it was run.
abs() { case "$1" in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }

binary=target/release/reka-host
llm_wasm=target/wasm/reka-llm.wasm
manifest=spin.toml
runtime_config=deploy/image/runtime-config.toml
models_dir=${REKA_CACHE_DIR:-$HOME/.cache/reka/models}
out=deploy/out/oci
with_models=
tag=
strip=1
while [ $# -gt 0 ]; do
  case "$1" in
    --with-models) with_models=1 ;;
    --models-dir) models_dir=$(abs "$2"); shift ;;
    --tag) tag=$2; shift ;;
    --runtime-config) runtime_config=$(abs "$2"); shift ;;
    --binary) binary=$(abs "$2"); shift ;;
    --llm-wasm) llm_wasm=$(abs "$2"); shift ;;
    --manifest) manifest=$(abs "$2"); shift ;;
    --out) out=$(abs "$2"); shift ;;
    --no-strip) strip= ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "deploy-image: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

[ -x "$binary" ] || { echo "deploy-image: $binary is missing: cargo build --release -p reka-host" >&2; exit 1; }
[ -f "$manifest" ] || { echo "deploy-image: $manifest is missing" >&2; exit 1; }
app_wasm=$(dirname "$manifest")/target/wasm/reka-app.wasm
[ -f "$app_wasm" ] || { echo "deploy-image: $app_wasm is missing (built by cargo build -p reka-host)" >&2; exit 1; }
[ -f "$llm_wasm" ] || { echo "deploy-image: $llm_wasm is missing (built by cargo build -p reka-host)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${tag:-$version${with_models:+-models}}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The binary is copied (and stripped: ~25% smaller, panics still name
# functions) so a rebuild under us cannot change it halfway through.
cp "$binary" "$work/reka-host"
cp "$llm_wasm" "$work/reka-llm.wasm"
if [ -n "$strip" ] && command -v strip >/dev/null; then strip "$work/reka-host"; fi

echo "deploy-image: $binary (built $(date -u -r "$binary" +%FT%TZ)), $app_wasm (built $(date -u -r "$app_wasm" +%FT%TZ)), $llm_wasm (built $(date -u -r "$llm_wasm" +%FT%TZ)) -> $out:$tag" >&2
python3 deploy/image/build_oci.py \
  --binary "$work/reka-host" --llm-wasm "$work/reka-llm.wasm" --manifest "$manifest" --runtime-config "$runtime_config" \
  --models-dir "$models_dir" ${with_models:+--with-models} \
  --out "$out" --tag "$tag" --version "$version"
