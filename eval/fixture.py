"""Condense lm-eval ``hf`` sample logs into tests/fixtures/eval/hf_loglikelihoods.json.

Usage (in the hfevalvenv, see eval/venvs.sh)::

    python eval/fixture.py SAMPLES_DIR GGUF OUT_JSON [--tasks reka_arc_easy,reka_hellaswag]

SAMPLES_DIR is an lm-eval ``--output_path`` tree written with ``--log_samples``
by the ``hf`` backend (eval/make-fixture.sh). The output maps each task to one
record per question, in doc_id order::

    {"reka_arc_easy": [{"doc_id": 0, "target": 0,
                        "lls": [-17.55, ...],        # per choice, nats, summed over
                                                     # the continuation's tokens
                        "greedy": [false, ...],      # lm-eval's is_greedy per choice
                        "context": "Question: ...\\nAnswer:",
                        "continuations": [" cellular telephone", ...],
                        "context_tokens": [...],
                        "continuation_tokens": [[...], ...]}, ...], ...}

lm-eval's sample logs do not carry token ids. They are recomputed here the way
lm-eval 0.4.13 tokenizes a causal model's (context, continuation) pair
(``TemplateLM._encode_pair``): trailing spaces of the context move to the front
of the continuation, the continuation's ids are the tail of
``encode(context + continuation)`` after ``len(encode(context))`` ids, and the
model is fed ``context_tokens + continuation_tokens``. The tokenizer is the one
the hf backend used: transformers' tokenizer read from the GGUF, with
``add_bos_token=False`` (no special tokens added; the GGUF's own
``tokenizer.ggml.add_bos_token`` is false too). When llama-cpp-python is
importable the ids are also checked against llama.cpp's tokenizer of the same
GGUF and every disagreement is reported (none is expected).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (same directory; the sample-log reader)


def encode_pair(encode, context: str, continuation: str) -> tuple[list[int], list[int]]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(context + continuation)
    ctx = encode(context)
    return ctx, whole[len(ctx) :]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples_dir")
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--tasks", default="reka_arc_easy,reka_hellaswag")
    args = ap.parse_args()

    import transformers

    gguf = os.path.abspath(args.gguf)
    tok = transformers.AutoTokenizer.from_pretrained(
        os.path.dirname(gguf), gguf_file=os.path.basename(gguf), add_bos_token=False
    )

    def hf_encode(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    try:
        import llama_cpp

        llama = llama_cpp.Llama(model_path=gguf, vocab_only=True, verbose=False)

        def cpp_encode(text: str) -> list[int] | None:
            return llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    except ImportError:
        cpp_encode = None

    runs = compare.load(args.samples_dir)
    out = {}
    cpp_checked = cpp_diff = 0
    for task in args.tasks.split(","):
        if task not in runs:
            print(f"fixture: {task} not in {args.samples_dir}", file=sys.stderr)
            return 1
        records = []
        for doc in sorted(runs[task], key=lambda d: d["doc_id"]):
            pairs = [encode_pair(hf_encode, doc["context"], c) for c in doc["continuations"]]
            contexts = {tuple(p[0]) for p in pairs}
            if len(contexts) != 1:
                raise SystemExit(f"fixture: {task} doc {doc['doc_id']}: choices tokenize the context differently")
            if cpp_encode is not None:
                for c in doc["continuations"]:
                    ctx_ids, cont_ids = encode_pair(cpp_encode, doc["context"], c)
                    ref_ctx, ref_cont = encode_pair(hf_encode, doc["context"], c)
                    cpp_checked += 1
                    if ctx_ids != ref_ctx or cont_ids != ref_cont:
                        cpp_diff += 1
                        print(f"fixture: {task} doc {doc['doc_id']} {c!r}: llama.cpp tokenizes differently", file=sys.stderr)
            records.append(
                {
                    "doc_id": doc["doc_id"],
                    "target": int(doc["target"]),
                    "lls": doc["lls"],
                    "greedy": doc["greedy"],
                    "context": doc["context"],
                    "continuations": doc["continuations"],
                    "context_tokens": pairs[0][0],
                    "continuation_tokens": [p[1] for p in pairs],
                }
            )
        out[task] = records
    # Compact, but one question per line so that diffs stay readable.
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("{\n")
        for i, (task, records) in enumerate(out.items()):
            fh.write(f"{json.dumps(task)}: [\n")
            lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
            fh.write(",\n".join(lines))
            fh.write("\n]" + ("," if i + 1 < len(out) else "") + "\n")
        fh.write("}\n")
    sizes = ", ".join(f"{t}: {len(r)} questions" for t, r in out.items())
    print(f"fixture: wrote {args.out} ({sizes})")
    if cpp_encode is not None:
        print(f"fixture: llama.cpp tokenizer agrees on {cpp_checked - cpp_diff}/{cpp_checked} (context, continuation) pairs")
    return 1 if cpp_diff else 0


if __name__ == "__main__":
    sys.exit(main())
