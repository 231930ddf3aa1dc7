#!/usr/bin/env python3
"""Serves one model twice with the same reka-host binary, once per --device,
sends the same greedy chat requests (temperature 0, streamed) over a real
socket to each, and compares the streamed pieces: one SSE delta per token, so
equal lists mean the same tokens. Then one completions request with `echo`,
`logprobs` and `n` = 2 (the prompt scored through all rows of the LM head, the
prefill's KV cache copied to a second stream): the same texts, and every
log-prob within 0.05 of the other device's. Exit 1 when anything differs.

Usage: http-greedy-compare.py BIN MODEL [--devices cuda,cpu] [--manifest spin.toml]
       [--max-tokens 64] [--prompts N] [--env-b KEY=VAL ...] [--concurrent-a]
       [--out DIR]

--env-b sets environment variables for the second server only (e.g.
REKA_CUDA_GRAPHS=0); --concurrent-a sends the first server all prompts at
once (so its engine batches them) instead of one after another.

Only the Python standard library (the device machine has no network).
"""
import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers and explain why they are prime.",
    "Translate 'good morning' into Spanish and German.",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("server not ready in time")


def stream_chat(port, model, prompt, max_tokens):
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
    }).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"content-type": "application/json"})
    pieces, finish = [], None
    with urllib.request.urlopen(req, timeout=300) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            ev = json.loads(data)
            for ch in ev.get("choices", []):
                piece = ch.get("delta", {}).get("content")
                if piece:
                    pieces.append(piece)
                finish = ch.get("finish_reason") or finish
    return pieces, finish


def echo_fork(port):
    """Echoed prompt log-probs and two greedy answers forked from one prefill."""
    body = json.dumps({"model": "m", "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0,
                       "logprobs": 3, "echo": True, "n": 2}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        v = json.load(r)
    choices = sorted(v["choices"], key=lambda c: c["index"])
    return [c["text"] for c in choices], choices[0]["logprobs"]["token_logprobs"]


def timed_chat(port, prompt, max_tokens):
    t0 = time.time()
    pieces, finish = stream_chat(port, "m", prompt, max_tokens)
    return pieces, finish, time.time() - t0


def run_device(args, device, label, env, together):
    port = free_port()
    log = open(os.path.join(args.out, f"serve-{label}.log"), "w")
    cmd = [args.bin, "serve", "--manifest", args.manifest, "--model", args.model,
           "--model-name", "m", "--device", device, "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    try:
        wait_ready(port, proc, 180)
        prompts = PROMPTS[:args.prompts]
        if together:
            with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
                chats = list(pool.map(lambda p: timed_chat(port, p, args.max_tokens), prompts))
        else:
            chats = [timed_chat(port, p, args.max_tokens) for p in prompts]
        return chats, echo_fork(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("model")
    ap.add_argument("--devices", default="cuda,cpu")
    ap.add_argument("--manifest", default="spin.toml")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS), help="the first N prompts only")
    ap.add_argument("--env-b", action="append", default=[], metavar="KEY=VAL")
    ap.add_argument("--concurrent-a", action="store_true")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    devices = args.devices.split(",")
    if len(devices) != 2:
        sys.exit("--devices names two devices")
    env_b = dict(kv.split("=", 1) for kv in args.env_b)
    a, b = devices if devices[0] != devices[1] else (f"{devices[0]}-a", f"{devices[1]}-b")
    results, echoes = {}, {}
    results[a], echoes[a] = run_device(args, devices[0], a, {}, args.concurrent_a)
    results[b], echoes[b] = run_device(args, devices[1], b, env_b, False)
    devices = [a, b]
    same_all = True
    for i, p in enumerate(PROMPTS[:args.prompts]):
        (pa, fa, ta), (pb, fb, tb) = results[a][i], results[b][i]
        same = pa == pb and fa == fb
        same_all &= same
        first = next((k for k, (x, y) in enumerate(zip(pa, pb)) if x != y), min(len(pa), len(pb)))
        print(f"prompt {i}: {len(pa)} vs {len(pb)} pieces, finish {fa}/{fb}, "
              f"{a} {ta:.2f} s, {b} {tb:.2f} s: {'same tokens' if same else f'DIFFER from piece {first}'}")
        print(f"  {a}: {''.join(pa)!r}")
        if not same:
            print(f"  {b}: {''.join(pb)!r}")
    with open(os.path.join(args.out, "http-greedy.json"), "w") as f:
        json.dump({d: [{"pieces": r[0], "finish": r[1], "seconds": r[2]} for r in results[d]] for d in devices}, f, indent=1)
    (ta, la), (tb, lb) = echoes[a], echoes[b]
    gap = max((abs(x - y) for x, y in zip(la[1:], lb[1:])), default=0.0)
    echo_same = ta == tb and ta[0] == ta[1] and len(la) == len(lb) and la[0] is None and lb[0] is None and gap < 0.05
    same_all &= echo_same
    print(f"echo + logprobs + n=2: texts {ta!r} vs {tb!r}, {len(la)} log-probs, max |diff| {gap:.4f}: "
          f"{'same' if echo_same else 'DIFFERENT'}")
    print(f"HTTP greedy tokens, {a} vs {b}: {'all the same' if same_all else 'DIFFERENT'}")
    sys.exit(0 if same_all else 1)


if __name__ == "__main__":
    main()
