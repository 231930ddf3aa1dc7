#!/usr/bin/env python3
"""Measures what prefix caching does for a chat's second turn: serves the model
twice with the same reka-host binary (--prefix-cache on, then off), and on each
sends turn 1 of a ~1,500-token conversation, then its turn 2 (turn 1, its
answer, one new question) streamed, several times; prints a table of time to
first token (client side: request sent to the first SSE delta with content)
and the prompt tokens the server reused (reka:prefix_cache_reused_tokens_total).
Also checks that turn 2's streamed text is the same with the cache on and off.

Usage: prefix-cache-bench.py [BIN] [--model PATH] [--reps 3] [--max-tokens 16]
       [--words 1200] [--manifest spin.toml]

BIN defaults to target/release/reka-host; MODEL to what `BIN fetch` prints
first. Only the Python standard library.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

NAME = "smollm2-135m"

SENTENCES = [
    "The harbour town woke slowly under a grey sky.",
    "Fishing boats rocked against the stone quay while gulls argued overhead.",
    "In the bakery on the corner, loaves cooled on wire racks by the window.",
    "An old clockmaker unlocked his shop and wound each clock in turn.",
    "Children ran past with satchels, late again for the morning bell.",
    "By noon the market square was full of stalls selling apples, cheese and wool.",
    "A stranger arrived on the afternoon ferry carrying a battered leather case.",
    "Nobody in town recognised her, though several people thought they should.",
    "She took a room above the tavern and asked the landlord about the lighthouse.",
    "The lighthouse had been dark for eleven years, since the storm of the long winter.",
]


def conversation_text(words):
    out, n, i = [], 0, 0
    while n < words:
        s = SENTENCES[i % len(SENTENCES)]
        if i % len(SENTENCES) == 0:
            s = f"Chapter {i // len(SENTENCES) + 1}. " + s
        out.append(s)
        n += len(s.split())
        i += 1
    return " ".join(out)


def start(binary, manifest, model, extra):
    p = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--manifest", manifest, "--model", model, "--model-name", NAME, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if line.startswith("listening on http://"):
            host, port = line.strip().removeprefix("listening on http://").rsplit(":", 1)
            return p, (host, int(port))
    raise SystemExit("the server exited before listening")


def post(addr, path, body):
    c = http.client.HTTPConnection(*addr, timeout=600)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"{path}: {r.status} {data[:300]!r}")
    return json.loads(data)


def metric(addr, name):
    c = http.client.HTTPConnection(*addr, timeout=60)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    prefix = f'{name}{{model_name="{NAME}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


def settle(addr):
    """Waits until the last answer's session has ended in the engine."""
    for _ in range(500):
        if metric(addr, "reka:num_requests_running") == 0:
            return
        time.sleep(0.01)


def stream_ttft(addr, messages, max_tokens):
    """(seconds to the first content delta, streamed text, prompt tokens)."""
    body = {"model": NAME, "messages": messages, "temperature": 0, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    c = http.client.HTTPConnection(*addr, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise SystemExit(f"stream: {r.status} {r.read()[:300]!r}")
    ttft, text, prompt = None, [], None
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        prompt = (ev.get("usage") or {}).get("prompt_tokens", prompt)
        for ch in ev.get("choices", []):
            piece = (ch.get("delta") or {}).get("content")
            if piece:
                if ttft is None:
                    ttft = time.perf_counter() - t0
                text.append(piece)
    return ttft, "".join(text), prompt


def run(binary, manifest, model, cache, args):
    p, addr = start(binary, manifest, model, ["--prefix-cache", cache])
    try:
        question = conversation_text(args.words) + "\n\nSummarise the story so far in two sentences."
        messages = [{"role": "user", "content": question}]
        t0 = time.perf_counter()
        first = post(addr, "/v1/chat/completions", {"model": NAME, "messages": messages, "temperature": 0, "max_tokens": args.max_tokens})
        turn1 = time.perf_counter() - t0
        settle(addr)
        messages += [{"role": "assistant", "content": first["choices"][0]["message"]["content"]},
                     {"role": "user", "content": "Who arrived on the ferry?"}]
        ttfts, texts, reused = [], [], []
        for _ in range(args.reps):
            before = metric(addr, "reka:prefix_cache_reused_tokens_total")
            ttft, text, turn2_tokens = stream_ttft(addr, messages, args.max_tokens)
            settle(addr)
            ttfts.append(ttft)
            texts.append(text)
            reused.append(int(metric(addr, "reka:prefix_cache_reused_tokens_total") - before))
        return {"cache": cache, "turn1_tokens": first["usage"]["prompt_tokens"], "turn2_tokens": turn2_tokens, "turn1_s": turn1,
                "ttfts": ttfts, "reused": reused, "texts": texts}
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="target/release/reka-host")
    ap.add_argument("--model")
    ap.add_argument("--manifest", default="spin.toml")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--words", type=int, default=1200)
    args = ap.parse_args()
    model = args.model or subprocess.run([args.binary, "fetch"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    on = run(args.binary, args.manifest, model, "on", args)
    off = run(args.binary, args.manifest, model, "off", args)
    print(f"model {os.path.basename(model)}, prompt tokens: turn 1 {on['turn1_tokens']}, turn 2 {on['turn2_tokens']}; "
          f"{args.reps} turn-2 requests each, "
          f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'all cores')}")
    print()
    print("| prefix cache | turn 1 (whole request) | turn 2 TTFT median | turn 2 TTFT each | reused tokens each |")
    print("|---|---|---|---|---|")
    for r in (on, off):
        each = ", ".join(f"{t * 1000:.0f}" for t in r["ttfts"])
        print(f"| {r['cache']} | {r['turn1_s'] * 1000:.0f} ms | {statistics.median(r['ttfts']) * 1000:.0f} ms | {each} ms | "
              f"{', '.join(map(str, r['reused']))} |")
    ratio = statistics.median(on["ttfts"]) / statistics.median(off["ttfts"])
    print()
    print(f"turn 2 TTFT with the cache: {ratio * 100:.1f} % of without (target <= 25 %)")
    same = on["texts"] == off["texts"]
    print(f"turn 2 text identical with the cache on and off: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
