#!/usr/bin/env python3
"""Aggregate decode speed of Spin's llm::infer on reka-host: the example Spin app
(examples/spin-llm, spin-sdk 7) answering 1 and then 8 concurrent requests, each
of which calls llm::infer_with_options, beside /v1/completions doing the same
work, in one run. Prints a Markdown table.

    scripts/spin-llm-bench.py [--tokens 64] [--repeats 3]

Needs target/release/reka-host (cargo build --release -p reka-host) and the
example built (cargo build --release --target wasm32-wasip2 in examples/spin-llm).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["Once upon a time", "The history of Rome", "Dear diary, today", "A recipe for bread:",
           "The ocean is", "In the year 3000,", "My favourite book", "Rust is a language"]


def post(addr, path, body):
    req = urllib.request.Request(f"http://{addr}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def call(addr, kind, prompt, tokens):
    # Greedy, no repeat penalty, no stop before `tokens`: the same work both ways.
    if kind == "llm::infer":
        r = post(addr, "/app/infer", {"prompt": prompt, "max_tokens": tokens, "temperature": 0.0, "repeat_penalty": 1.0})
        return r["generated_tokens"]
    r = post(addr, "/v1/completions", {"model": "llama2-chat", "prompt": prompt, "max_tokens": tokens,
                                       "temperature": 0, "ignore_eos": True})
    return r["usage"]["completion_tokens"]


def run(addr, kind, streams, tokens):
    out = [0] * streams
    def one(i):
        out[i] = call(addr, kind, PROMPTS[i % len(PROMPTS)], tokens)
    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(out), time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    ex = os.path.join(ROOT, "examples", "spin-llm")
    srv = subprocess.Popen([os.path.join(ROOT, "target", "release", "reka-host"), "serve", "--listen", "127.0.0.1:0",
                            "--manifest", os.path.join(ex, "spin.toml"),
                            "--runtime-config", os.path.join(ex, "runtime-config.toml")],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = None
        for line in srv.stdout:
            m = re.search(r"listening on http://(\S+)", line)
            if m:
                addr = m.group(1)
                break
        if not addr:
            sys.exit("the server did not start")
        call(addr, "llm::infer", PROMPTS[0], 4)  # warm-up
        print(f"| path | streams | tokens | wall s | aggregate tok/s | vs 1 stream |")
        print(f"|---|---:|---:|---:|---:|---:|")
        for kind in ["llm::infer", "/v1/completions"]:
            base = None
            for streams in [1, 8]:
                best = None
                for _ in range(a.repeats):
                    n, s = run(addr, kind, streams, a.tokens)
                    if best is None or n / s > best[0] / best[1]:
                        best = (n, s)
                rate = best[0] / best[1]
                base = base or rate
                print(f"| {kind} | {streams} | {best[0]} | {best[1]:.2f} | {rate:.1f} | {rate / base:.2f}x |")
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main()
