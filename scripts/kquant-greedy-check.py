#!/usr/bin/env python3
"""Greedy text over HTTP against llama.cpp's on the same K-quant GGUF file.

Starts `reka-host serve --model FILE` on a loopback port, asks
`/v1/completions` for the fixture's token-id prompt (temperature 0, its token
count, `logprobs: 2`), and compares every step with llama.cpp's greedy tokens
in the fixture (tests/fixtures/kquants/smollm2-*-greedy.json, made by
scripts/kquant-fixtures.py --greedy from llama.cpp's own decode). Prints one
line per step with both margins (best minus second-best logit; for us the
log-prob difference, which is the same number) and exits non-zero when the
texts part before llama.cpp's first near-tie (margin < --tie, default 0.05),
where a different summation order may rightly choose the other token.

  scripts/kquant-greedy-check.py ~/.cache/reka/models/SmolLM2-135M-Instruct.Q4_K_M.gguf \
      tests/fixtures/kquants/smollm2-q4_k_m-greedy.json
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request


def post(base, path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("fixture")
    ap.add_argument("--bin", default="target/release/reka-host")
    ap.add_argument("--tie", type=float, default=0.05)
    a = ap.parse_args()
    ref = json.load(open(a.fixture))
    sha = hashlib.sha256(open(a.model, "rb").read()).hexdigest()
    if sha != ref["model_sha256"]:
        sys.exit(f"{a.model} has sha256 {sha}, the fixture was made from {ref['model_sha256']}")
    srv = subprocess.Popen(
        [a.bin, "serve", "--listen", "127.0.0.1:0", "--manifest", "spin.toml", "--model", a.model, "--model-name", "m"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        base = None
        for line in srv.stderr:
            m = re.search(r"listening on (?:http://)?([0-9.]+:[0-9]+)", line)
            if m:
                base = "http://" + m.group(1)
                break
        if base is None:
            sys.exit("the server did not start")
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/health", timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        n = ref["n_tokens"]
        out = post(base, "/v1/completions", {
            "model": "m", "prompt": ref["prompt_ids"], "temperature": 0, "max_tokens": n, "logprobs": 2,
        })
        lp = out["choices"][0]["logprobs"]
        ours = lp["tokens"]
        theirs = [post(base, "/detokenize", {"model": "m", "tokens": [t]})["prompt"] for t in ref["tokens"]]
        first_tie = next((s["step"] for s in ref["steps"] if s["margin"] < a.tie), n)
        parted = None
        print(f"{'step':>4}  {'llama.cpp':>14} {'margin':>7}  {'ours':>14} {'margin':>7}")
        for i, step in enumerate(ref["steps"]):
            top = sorted(lp["top_logprobs"][i].values(), reverse=True) if i < len(lp["top_logprobs"]) else []
            mine = top[0] - top[1] if len(top) > 1 else float("nan")
            tok = ours[i] if i < len(ours) else "<none>"
            same = tok == theirs[i]
            flag = "" if same else "  <- differs"
            if i == first_tie:
                flag += "  (llama.cpp's first near-tie)"
            print(f"{i:>4}  {theirs[i]!r:>14} {step['margin']:7.4f}  {tok!r:>14} {mine:7.4f}{flag}")
            if not same and parted is None:
                parted = i
        print(f"\nllama.cpp's first margin under {a.tie}: step {first_tie}; texts part at: {parted}")
        if parted is not None and parted < first_tie:
            sys.exit(f"the greedy texts part at step {parted}, before llama.cpp's first near-tie (step {first_tie})")
        print("ok: equal up to the first near-tie" + (" and beyond, to the end" if parted is None else ""))
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main()
