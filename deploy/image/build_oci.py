#!/usr/bin/env python3
"""Assembles the reka-host OCI image as an OCI image layout, from scratch.

No base image, no daemon, no root, Python's standard library only: the layer
holds the `reka-host` binary, the shared libraries `ldd` says it needs (the
dynamic loader included, at the path the binary names), the Spin LLM
provider (`reka-llm.wasm`, found by the host through `REKA_LLM_WASM`, which the
config's Env sets), the app (`spin.toml` and every component `source` it
names), a runtime config, a passwd entry for the non-root user, and an empty
`/tmp`; `--with-models` adds a second layer with the model files that runtime
config names under `/models` (language models and embedding models).

Reproducible: entries sorted, owner 0:0, fixed modes, every mtime and the
config's `created` set to SOURCE_DATE_EPOCH (default 0), gzip without name or
time, so the same inputs give the same digests.

Several tags may live in one layout (`index.json` keeps the others; blobs no
tag reaches are removed). Called by scripts/deploy-image.sh, which documents
the options; `--verify` is used by scripts/deploy-check.sh.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path, PurePosixPath

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF = "org.opencontainers.image.ref.name"

BIN = "/usr/local/bin/reka-host"
# The Spin LLM provider: plugged by reka-host into any component importing
# fermyon:spin/llm@2.0.0. The host reads REKA_LLM_WASM at run time (else the
# build machine's target/wasm path, which is not in the image).
LLM_WASM = "/usr/local/lib/reka/reka-llm.wasm"
APP = "/app"
RUNTIME_CONFIG = "/etc/reka/runtime-config.toml"
MODELS = "/models"
UID = 65532  # the conventional "nonroot" id of distroless images
PORT = 8080


def die(msg):
    sys.exit(f"deploy-image: {msg}")


# ---------------------------------------------------------------- the binary


def elf_facts(path):
    """(architecture in OCI's words, PT_INTERP or None) of an ELF64 file."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            die(f"{path} is not a little-endian ELF64 file")
        machine = struct.unpack_from("<H", head, 0x12)[0]
        phoff = struct.unpack_from("<Q", head, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        arch = {0x3E: "amd64", 0xB7: "arm64"}.get(machine) or die(f"unknown ELF machine {machine:#x}")
        interp = None
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            p_type = struct.unpack_from("<I", ph, 0)[0]
            if p_type == 3:  # PT_INTERP
                off, size = struct.unpack_from("<Q", ph, 8)[0], struct.unpack_from("<Q", ph, 32)[0]
                f.seek(off)
                interp = f.read(size).rstrip(b"\0").decode()
        return arch, interp


def shared_libraries(binary):
    """Absolute paths of every shared library `ldd` resolves for `binary`
    (transitively), the loader excluded; fails on one that is not found."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if out.returncode != 0:
        die(f"ldd {binary} failed: {out.stderr.strip() or out.stdout.strip()}")
    libs = []
    for line in out.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            die(f"ldd: {line}")
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(")[0].strip()
            if target:
                libs.append(target)
    return sorted(set(libs))


# ---------------------------------------------------------------- layers


class HashWriter:
    """A file-like sink that hashes and counts what passes through it."""

    def __init__(self, inner):
        self.inner, self.sha, self.size = inner, hashlib.sha256(), 0

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        if self.inner is not None:
            self.inner.write(b)
        return len(b)

    def flush(self):
        pass


class Layer:
    """The files of one layer: image path -> (source path | bytes | None for a dir, mode)."""

    def __init__(self, description):
        self.description, self.entries = description, {}

    def add_dir(self, path, mode=0o755):
        p = PurePosixPath(path)
        for parent in reversed(p.parents):
            if str(parent) != "/":
                self.entries.setdefault(str(parent), (None, 0o755))
        self.entries[str(p)] = (None, mode)

    def _parents(self, path):
        parent = PurePosixPath(path).parent
        if str(parent) != "/" and str(parent) not in self.entries:
            self.add_dir(str(parent))

    def add_file(self, path, src, mode=0o644):
        src = Path(src)
        if not src.is_file():
            die(f"{src} is missing (wanted at {path} in the image)")
        self._parents(path)
        self.entries[path] = (src.resolve(), mode)

    def add_bytes(self, path, data, mode=0o644):
        self._parents(path)
        self.entries[path] = (data, mode)

    def uncompressed_size(self):
        return sum(len(s) if isinstance(s, bytes) else s.stat().st_size for s, _ in self.entries.values() if s is not None)

    def write(self, blobs, epoch, level):
        """Writes the gzipped tar into `blobs`; returns (diff_id, descriptor)."""
        tmp = tempfile.NamedTemporaryFile(dir=blobs, prefix=".layer-", delete=False)
        try:
            compressed = HashWriter(tmp)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=level)
            plain = HashWriter(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in sorted(self.entries):
                    src, mode = self.entries[path]
                    info = tarfile.TarInfo(path.lstrip("/"))
                    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = epoch, mode, 0, 0, "", ""
                    if src is None:
                        info.type = tarfile.DIRTYPE
                        tar.addfile(info)
                    elif isinstance(src, bytes):
                        info.size = len(src)
                        tar.addfile(info, io.BytesIO(src))
                    else:
                        info.size = src.stat().st_size
                        with open(src, "rb") as f:
                            tar.addfile(info, f)
            gz.close()
            tmp.close()
            os.chmod(tmp.name, 0o644)
            digest = "sha256:" + compressed.sha.hexdigest()
            os.replace(tmp.name, blobs / compressed.sha.hexdigest())
        except BaseException:
            os.unlink(tmp.name)
            raise
        diff_id = "sha256:" + plain.sha.hexdigest()
        return diff_id, {"mediaType": MT_LAYER, "digest": digest, "size": compressed.size}, plain.size


def put_blob(blobs, data):
    h = hashlib.sha256(data).hexdigest()
    (blobs / h).write_bytes(data)
    return "sha256:" + h


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------- contents


def base_layer(args, libs, interp):
    layer = Layer("reka-host, its shared libraries and loader, the Spin LLM provider, the app, the runtime config")
    layer.add_file(BIN, args.binary, 0o755)
    with open(args.llm_wasm, "rb") as f:
        if f.read(8) != b"\0asm\x0d\x00\x01\x00":  # a component (layer 1), not a core module
            die(f"{args.llm_wasm} is not a wasm component")
    layer.add_file(LLM_WASM, args.llm_wasm)
    if interp:
        layer.add_file(interp, interp, 0o755)
    for lib in libs:
        layer.add_file(lib, lib, 0o755)
    # The app: spin.toml at /app and the component sources it names, at the
    # same relative paths, so the manifest is used as it is.
    manifest = Path(args.manifest)
    layer.add_file(f"{APP}/spin.toml", manifest)
    spin = tomllib.loads(manifest.read_text())
    for cid, comp in sorted(spin.get("component", {}).items()):
        source = comp.get("source")
        if not isinstance(source, str):
            die(f"component {cid}: only a local `source` path can go in the image")
        if comp.get("files"):
            die(f"component {cid}: `files` are not packed yet; add them to deploy/image/build_oci.py")
        rel = PurePosixPath(source)
        if rel.is_absolute() or ".." in rel.parts:
            die(f"component {cid}: source {source} must be relative to spin.toml, inside its folder")
        layer.add_file(f"{APP}/{rel}", manifest.parent / source)
    layer.add_file(RUNTIME_CONFIG, args.runtime_config)
    layer.add_bytes("/etc/passwd", f"root:x:0:0:root:/root:/sbin/nologin\nreka:x:{UID}:{UID}:reka:/tmp:/sbin/nologin\n".encode())
    layer.add_bytes("/etc/group", f"root:x:0:\nreka:x:{UID}:\n".encode())
    layer.add_dir("/tmp", 0o1777)
    layer.add_dir(MODELS, 0o755)
    return layer


def model_files(runtime_config, models_dir):
    """(image path, host path) of every file the runtime config's models need
    under /models: the model itself, an mmproj, the files a multimodal .json
    config names, or a checkpoint directory's whole tree; and each embedding
    model's directory (sentence-transformers: its whole tree)."""
    cfg = tomllib.loads(Path(runtime_config).read_text())
    files = {}

    def want(image_path):
        p = PurePosixPath(image_path)
        try:
            rel = p.relative_to(MODELS)
        except ValueError:
            die(f"runtime config path {image_path} is not under {MODELS}: --with-models packs only {MODELS}")
        host = Path(models_dir) / rel
        if host.is_dir():
            for f in sorted(host.rglob("*")):
                if f.is_file():
                    files[str(p / f.relative_to(host).as_posix())] = f
        elif host.is_file():
            files[str(p)] = host
            if host.suffix == ".json":
                spec = json.loads(host.read_text())
                named = [spec.get("decoder"), spec.get("mmproj")]
                named += [(spec.get(k) or {}).get("weights") for k in ("vision", "audio")]
                for n in filter(None, named):
                    want(str(p.parent / n))
        else:
            die(f"{host} is missing (the runtime config names {image_path}); run `reka-host fetch` or pass --models-dir")

    for name, m in sorted(cfg.get("models", {}).items()):
        want(m["path"])
        if m.get("mmproj"):
            want(m["mmproj"])
    for name, m in sorted(cfg.get("embedding_models", {}).items()):
        want(m["path"])
        if not any(k.startswith(m["path"].rstrip("/") + "/") for k in files):
            die(f"embedding model {name}: {m['path']} must be a directory (sentence-transformers), with files in it")
    return files


# ---------------------------------------------------------------- the layout


def write_layout(args):
    out = Path(args.out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))

    arch, interp = elf_facts(args.binary)
    libs = shared_libraries(args.binary) if interp else []
    layers = [base_layer(args, libs, interp)]
    if args.with_models:
        models = Layer(f"the model files under {MODELS}")
        for image_path, host in sorted(model_files(args.runtime_config, args.models_dir).items()):
            models.add_file(image_path, host)
        layers.append(models)

    diff_ids, descs, report = [], [], []
    for layer in layers:
        diff_id, desc, plain = layer.write(blobs, epoch, args.level)
        diff_ids.append(diff_id)
        descs.append(desc)
        report.append({
            "layer": layer.description,
            "digest": desc["digest"],
            "compressed_bytes": desc["size"],
            "uncompressed_tar_bytes": plain,
            "files": {p: (len(s) if isinstance(s, bytes) else s.stat().st_size)
                      for p, (s, _) in sorted(layer.entries.items()) if s is not None},
        })

    created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": f"{UID}:{UID}",
            "Entrypoint": [BIN],
            "Cmd": ["serve", "--runtime-config", RUNTIME_CONFIG],
            "ExposedPorts": {f"{PORT}/tcp": {}},
            "Env": [
                "PATH=/usr/local/bin",
                f"REKA_LISTEN=0.0.0.0:{PORT}",
                "HOME=/tmp",
                f"REKA_CACHE_DIR={MODELS}",
                f"REKA_LLM_WASM={LLM_WASM}",
                # The app's state (the arena's key-value store): /app is not
                # writable by the image's user, /tmp is.
                "REKA_STATE_DIR=/tmp/reka-state",
            ],
            "WorkingDir": APP,
            "StopSignal": "SIGTERM",
            "Labels": {
                "org.opencontainers.image.title": "reka-host",
                "org.opencontainers.image.description": "Reka-family LLM inference: reka-host (wasmtime) serving the Reka wasm app; OpenAI API and Spin's remote_http llm_compute",
                "org.opencontainers.image.version": args.version,
                "org.opencontainers.image.licenses": "Apache-2.0",
                "dev.reka.models": "baked-in" if args.with_models else "volume",
            },
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"deploy/image/build_oci.py: {l.description}"} for l in layers],
    }
    config_bytes = canonical(config)
    config_desc = {"mediaType": MT_CONFIG, "digest": put_blob(blobs, config_bytes), "size": len(config_bytes)}
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config_desc, "layers": descs}
    manifest_bytes = canonical(manifest)
    manifest_desc = {
        "mediaType": MT_MANIFEST,
        "digest": put_blob(blobs, manifest_bytes),
        "size": len(manifest_bytes),
        "platform": {"architecture": arch, "os": "linux"},
        "annotations": {REF: args.tag},
    }

    index_path = out / "index.json"
    others = []
    if index_path.exists():
        others = [m for m in json.loads(index_path.read_text()).get("manifests", [])
                  if m.get("annotations", {}).get(REF) != args.tag]
    entries = sorted(others + [manifest_desc], key=lambda m: m["annotations"][REF])
    index_path.write_bytes(canonical({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}))
    collect_garbage(out, entries)

    summary = {
        "layout": str(out),
        "tag": args.tag,
        "manifest_digest": manifest_desc["digest"],
        "config_digest": config_desc["digest"],
        "architecture": arch,
        "loader": interp,
        "libraries": libs,
        "compressed_bytes": sum(d["size"] for d in descs) + len(config_bytes) + len(manifest_bytes),
        "uncompressed_bytes": sum(r["uncompressed_tar_bytes"] for r in report),
        "file_bytes": sum(sum(r["files"].values()) for r in report),
        "layers": report,
    }
    (out / f"{args.tag}.summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def collect_garbage(out, entries):
    """Removes blobs no tag of the index reaches."""
    blobs = out / "blobs" / "sha256"
    keep = set()
    for m in entries:
        h = m["digest"].split(":", 1)[1]
        keep.add(h)
        man = json.loads((blobs / h).read_text())
        keep.add(man["config"]["digest"].split(":", 1)[1])
        keep.update(l["digest"].split(":", 1)[1] for l in man["layers"])
    for b in blobs.iterdir():
        if b.name not in keep:
            b.unlink()


# ---------------------------------------------------------------- verifying


def verify(layout, tag, root):
    """Checks the layout's digests and sizes, unpacks the image's layers into
    `root`, and returns (config, manifest digest)."""
    blobs = Path(layout) / "blobs" / "sha256"

    def blob(desc):
        data_path = blobs / desc["digest"].split(":", 1)[1]
        h, n = hashlib.sha256(), 0
        with open(data_path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
        if "sha256:" + h.hexdigest() != desc["digest"] or n != desc["size"]:
            die(f"blob {desc['digest']} does not match its descriptor")
        return data_path

    index = json.loads((Path(layout) / "index.json").read_text())
    found = [m for m in index["manifests"] if m.get("annotations", {}).get(REF) == tag]
    if len(found) != 1:
        die(f"tag {tag} is not in {layout}/index.json")
    manifest = json.loads(blob(found[0]).read_text())
    config = json.loads(blob(manifest["config"]).read_text())
    if len(config["rootfs"]["diff_ids"]) != len(manifest["layers"]):
        die("the config's diff_ids and the manifest's layers differ in number")
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        h = hashlib.sha256()
        with gzip.open(blob(desc), "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if "sha256:" + h.hexdigest() != diff_id:
            die(f"layer {desc['digest']}: uncompressed digest is not the config's diff_id {diff_id}")
        with tarfile.open(blob(desc), "r:gz") as tar:
            tar.extractall(root, filter="tar")
    return config, found[0]["digest"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary")
    ap.add_argument("--llm-wasm", help="the Spin LLM provider, target/wasm/reka-llm.wasm")
    ap.add_argument("--manifest", help="spin.toml")
    ap.add_argument("--runtime-config")
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--with-models", action="store_true")
    ap.add_argument("--out", required=True, help="OCI layout directory")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--version", default="0.0.0")
    ap.add_argument("--level", type=int, default=6, help="gzip level")
    ap.add_argument("--verify", metavar="ROOT", help="check --out:--tag's digests and unpack its layers into ROOT instead of building")
    args = ap.parse_args()
    if args.verify:
        config, digest = verify(args.out, args.tag, args.verify)
        print(json.dumps({"manifest_digest": digest, "config": config["config"]}, indent=1))
        return
    if not (args.binary and args.llm_wasm and args.manifest and args.runtime_config):
        die("building needs --binary, --llm-wasm, --manifest and --runtime-config")
    if args.with_models and not args.models_dir:
        die("--with-models needs --models-dir")
    s = write_layout(args)
    print(json.dumps({k: s[k] for k in ("layout", "tag", "manifest_digest", "compressed_bytes", "uncompressed_bytes", "libraries", "loader")}, indent=1))


if __name__ == "__main__":
    main()
