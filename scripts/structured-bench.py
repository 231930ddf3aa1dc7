#!/usr/bin/env python3
"""What a constraint costs through the whole path (HTTP -> gateway -> generate
component in wasm -> engine): time to first content token and time per token
after it, median of 5 streamed chat requests each, without a constraint and
with json_schema / json_object. The first-token difference is mostly the
component building the vocabulary's token trie and llguidance's lexer slices
(once per constrained request); see docs/PERFORMANCE.md.

Usage: python3 scripts/structured-bench.py [BASE_URL]   (a running `reka-host serve`)
"""
import json, sys, time, urllib.request, statistics
URL = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080") + "/v1/chat/completions"
schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 400}, "bio": {"type": "string", "maxLength": 400}}, "required": ["name", "bio"]}
def run(extra):
    body = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "Write a long biography of Ada Lovelace."}], "temperature": 0, "max_tokens": 64, "stream": True, **extra}
    req = urllib.request.Request(URL, json.dumps(body).encode(), {"content-type": "application/json"})
    t0 = time.perf_counter(); first = None; n = 0
    with urllib.request.urlopen(req) as r:
        for line in r:
            if line.startswith(b"data: {") and b'"content"' in line or b'"tool_calls"' in line:
                c = json.loads(line[6:])["choices"]
                if c and (c[0]["delta"].get("content") or c[0]["delta"].get("tool_calls")):
                    n += 1
                    first = first or time.perf_counter()
    end = time.perf_counter()
    return (first - t0) * 1e3, (end - first) * 1e3 / max(n - 1, 1), n
print("| constraint | first token ms | ms / token after | content chunks |")
print("|---|---:|---:|---:|")
for name, extra in [("none", {}), ("json_schema", {"response_format": {"type": "json_schema", "json_schema": {"name": "b", "schema": schema}}}), ("json_object", {"response_format": {"type": "json_object"}}), ("none", {})]:
    rs = [run(extra) for _ in range(5)]
    print(f"| {name} | {statistics.median(r[0] for r in rs):.0f} | {statistics.median(r[1] for r in rs):.1f} | {rs[0][2]} |")
