"""A stand-in for reka-host: the few endpoints lm-eval needs, over llama-cpp-python.

Usage (any Python with llama-cpp-python and jinja2, e.g. the tokvenv)::

    python eval/llamacpp_server.py GGUF [--port 8090] [--name smollm2-135m]

It exists to test the evaluation scripts (scripts/eval-check.sh,
scripts/eval.sh with EVAL_SERVER_URL) without reka-host, and to measure how far
a llama.cpp engine (quantized matmuls) lands from lm-eval's ``hf`` backend
(the GGUF de-quantized to float32 by transformers), which sizes EVAL_TOL. It
also documents, as running code, the request and response shapes lm-eval
0.4.13 uses (vLLM's API):

* ``GET /health`` -> 200.
* ``GET /tokenizer_info`` -> ``{"eos_token", "bos_token", "pad_token",
  "chat_template", ...}``; lm-eval needs ``eos_token`` present, and takes the
  eos/bos ids as ``/tokenize`` of those strings (so special-token text must
  tokenize to the special id).
* ``POST /tokenize`` ``{"prompt": str, "add_special_tokens": false}`` ->
  ``{"tokens": [int], "count", "max_model_len"}``.
* ``POST /detokenize`` ``{"tokens": [int]}`` -> ``{"prompt": str}``.
* ``POST /v1/completions`` for log-likelihoods: ``{"model", "prompt":
  [[int, ...]] (a list of token-id lists; a string or a list of strings are
  taken too), "temperature": 0, "max_tokens": 1, "logprobs": 1, "echo": true,
  "seed": 1234}`` -> one choice per prompt, ``choices[i].index = i``, with
  ``logprobs.token_logprobs`` = [null, logprob of prompt token 1 given token 0,
  ..., logprob of the one generated token] (prompt length + 1 entries) and
  ``logprobs.top_logprobs`` = the same positions as ``{token_text: logprob}``
  of the top token (null first). lm-eval sums ``token_logprobs[ctxlen:-1]``
  and calls a choice greedy when each of those equals ``max(top.values())``
  exactly, so the top entry must carry the very same float when the prompt
  token is the argmax.
* ``POST /v1/completions`` for generation (``max_tokens``, ``stop``,
  ``temperature: 0``, no echo) and ``POST /v1/chat/completions`` (``messages``,
  the GGUF's chat template) -> ``choices[i].text`` / ``choices[0].message.content``.

One request at a time (a lock around the model); enough for 50-question checks.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jinja2
import llama_cpp
import numpy as np


class Model:
    def __init__(self, gguf: str, name: str, n_ctx: int, threads: int | None):
        self.name = name
        self.llm = llama_cpp.Llama(
            model_path=gguf, n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=threads, n_threads_batch=threads
        )
        self.lock = threading.Lock()
        meta = self.llm.metadata
        self.n_ctx = n_ctx
        self.bos_id = int(meta.get("tokenizer.ggml.bos_token_id", 1))
        self.eos_id = int(meta.get("tokenizer.ggml.eos_token_id", 2))
        self.chat_template = meta.get("tokenizer.chat_template", "")

    def tokenize(self, text: str) -> list[int]:
        # special=True: "<|im_end|>" in the text is the special token, as with HF tokenizers.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def piece(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens, special=True).decode("utf-8", errors="replace")

    def echo_logprobs(self, tokens: list[int]) -> dict:
        """Logprobs of every prompt token and of one greedy token after them."""
        with self.lock:
            self.llm.reset()
            self.llm.eval(tokens)
            logits = np.array(self.llm.scores[: len(tokens)], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        next_tok = int(np.argmax(logp[-1]))
        out_tokens = tokens + [next_tok]
        token_logprobs: list[float | None] = [None]
        top: list[dict | None] = [None]
        for pos in range(1, len(out_tokens)):
            row = logp[pos - 1]
            best = int(np.argmax(row))
            token_logprobs.append(float(row[out_tokens[pos]]))
            top.append({self.piece(best): float(row[best])})
        texts = [self.piece(t) for t in out_tokens]
        offsets, at = [], 0
        for t in texts:
            offsets.append(at)
            at += len(t)
        return {
            "text": "".join(texts),
            "logprobs": {"tokens": texts, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets},
            "finish_reason": "length",
        }

    def generate(self, tokens: list[int], max_tokens: int, stop: list[str]) -> dict:
        with self.lock:
            self.llm.reset()
            out = self.llm.create_completion(
                tokens, max_tokens=max_tokens, temperature=0.0, top_k=1, stop=stop or [], repeat_penalty=1.0
            )
        choice = out["choices"][0]
        return {"text": choice["text"], "logprobs": None, "finish_reason": choice.get("finish_reason", "stop")}


def prompts_of(body: dict, model: Model) -> list[list[int]]:
    p = body.get("prompt")
    if isinstance(p, str):
        return [model.tokenize(p)]
    if isinstance(p, list) and p and all(isinstance(x, int) for x in p):
        return [p]
    if isinstance(p, list) and all(isinstance(x, list) for x in p):
        return p
    if isinstance(p, list) and all(isinstance(x, str) for x in p):
        return [model.tokenize(x) for x in p]
    raise ValueError("prompt must be a string, a token list, or a list of either")


class Handler(BaseHTTPRequestHandler):
    model: Model
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        m = self.model
        if self.path == "/health":
            self.reply(200, {"status": "ok"})
        elif self.path == "/tokenizer_info":
            self.reply(
                200,
                {
                    "tokenizer_class": "llama.cpp",
                    "eos_token": m.piece(m.eos_id),
                    "bos_token": m.piece(m.bos_id),
                    "pad_token": m.piece(m.eos_id),
                    "chat_template": m.chat_template,
                    "model_max_length": m.n_ctx,
                },
            )
        elif self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": m.name, "object": "model"}]})
        else:
            self.reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        m = self.model
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/tokenize":
                toks = m.tokenize(body["prompt"])
                self.reply(200, {"tokens": toks, "count": len(toks), "max_model_len": m.n_ctx})
            elif self.path == "/detokenize":
                self.reply(200, {"prompt": m.detokenize(body["tokens"])})
            elif self.path == "/v1/completions":
                choices = []
                for i, toks in enumerate(prompts_of(body, m)):
                    if body.get("echo") and body.get("logprobs") is not None:
                        if body.get("max_tokens", 16) != 1:
                            raise ValueError("this stand-in echoes logprobs only with max_tokens 1")
                        c = m.echo_logprobs(toks)
                    else:
                        stop = body.get("stop") or []
                        c = m.generate(toks, int(body.get("max_tokens", 16)), [stop] if isinstance(stop, str) else stop)
                    choices.append({"index": i, **c})
                self.reply(200, {"id": "cmpl-0", "object": "text_completion", "created": int(time.time()), "model": m.name, "choices": choices})
            elif self.path == "/v1/chat/completions":
                text = jinja2.Environment().from_string(m.chat_template).render(
                    messages=body["messages"], add_generation_prompt=True
                )
                stop = body.get("stop") or []
                c = m.generate(m.tokenize(text), int(body.get("max_tokens", 256)), [stop] if isinstance(stop, str) else stop)
                self.reply(
                    200,
                    {
                        "id": "chatcmpl-0",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": m.name,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": c["text"]}, "finish_reason": c["finish_reason"]}],
                    },
                )
            else:
                self.reply(404, {"error": {"message": f"no route {self.path}"}})
        except (ValueError, KeyError, TypeError) as e:
            self.reply(400, {"error": {"message": str(e)}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--name", default="smollm2-135m")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    Handler.model = Model(args.gguf, args.name, args.n_ctx, args.threads)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"llamacpp_server: {args.gguf} as {args.name} on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
