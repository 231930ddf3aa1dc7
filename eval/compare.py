"""Compare per-choice log-likelihoods of two lm-eval multiple-choice runs.

Usage::

    python eval/compare.py REFERENCE CANDIDATE [--tol NATS] [--tasks t1,t2]

REFERENCE and CANDIDATE are each either

* a compact fixture such as ``tests/fixtures/eval/hf_loglikelihoods.json``
  (``{task: [{doc_id, target, lls: [...], greedy: [...], ...}]}``), or
* an lm-eval ``--output_path`` directory (or one ``samples_<task>_*.jsonl``
  file) written with ``--log_samples``; the newest samples file of each task
  found below the directory is used.

For every task of REFERENCE, the questions are matched by ``doc_id`` and, per
task, this prints the number of questions compared, max and mean |Δll| over
all choices (a choice's ll is the summed log-probability of its continuation
tokens, in nats), how often the predicted answer (argmax ll, lm-eval's ``acc``
prediction) differs, how often the ``is_greedy`` flag differs, and the ``acc``
of both sides. When both sides carry the continuation strings, ``acc_norm``
(argmax of ll / characters, as lm-eval computes it) is printed as well.

Exit status: 0 when every task's max |Δll| is within the tolerance
(``--tol``, else env ``EVAL_TOL``, else 0.05 nats per choice) and, if a limit
is given (``--max-argmax-diffs``, else env ``EVAL_MAX_ARGMAX_DIFFS``; default
none), no task has more predicted-answer disagreements than it; 1 when not;
2 when the two sides cannot be compared (a task or a question of
REFERENCE missing from CANDIDATE, different targets, different prompts, or a
different number of choices).

Standard library only, so it runs in any Python 3.9+.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys

DEFAULT_TOL = 0.05


class Incomparable(Exception):
    pass


def _doc_from_sample(sample: dict) -> dict:
    """One lm-eval sample-log line -> the fixture's per-question record."""
    args = sample["arguments"]
    # Saved as {"gen_args_0": {"arg_0": context, "arg_1": continuation}, ...}.
    keys = sorted(args, key=lambda k: int(k.rsplit("_", 1)[1]))
    resps = sample["resps"]
    if len(resps) != len(keys):
        raise Incomparable(f"doc {sample['doc_id']}: {len(keys)} requests but {len(resps)} responses")
    lls, greedy = [], []
    for r in resps:
        # resps[i] is [[ll, is_greedy]] (one repeat), both saved as strings.
        ll, g = r[0]
        lls.append(float(ll))
        greedy.append(g is True or str(g) == "True")
    return {
        "doc_id": sample["doc_id"],
        "target": str(sample["target"]),
        "context": args[keys[0]]["arg_0"],
        "continuations": [args[k]["arg_1"] for k in keys],
        "lls": lls,
        "greedy": greedy,
    }


def _task_of_samples_file(path: str) -> str:
    m = re.match(r"samples_(.+)_\d{4}-\d{2}-\d{2}T[\d\-.]+\.jsonl$", os.path.basename(path))
    if not m:
        raise Incomparable(f"{path}: not an lm-eval samples file name")
    return m.group(1)


def _read_samples_file(path: str) -> list[dict]:
    docs = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                sample = json.loads(line)
                if sample.get("filter", "none") != "none":
                    continue
                docs.append(_doc_from_sample(sample))
    return docs


def load(path: str) -> dict[str, list[dict]]:
    """{task: [record]} from a fixture, a samples file or an output directory."""
    if os.path.isdir(path):
        newest: dict[str, str] = {}
        for f in glob.glob(os.path.join(path, "**", "samples_*.jsonl"), recursive=True):
            task = _task_of_samples_file(f)
            # The timestamp in the name sorts chronologically.
            if task not in newest or os.path.basename(f) > os.path.basename(newest[task]):
                newest[task] = f
        if not newest:
            raise Incomparable(f"{path}: no samples_*.jsonl below it (was lm-eval run with --log_samples?)")
        return {task: _read_samples_file(f) for task, f in sorted(newest.items())}
    if path.endswith(".jsonl"):
        return {_task_of_samples_file(path): _read_samples_file(path)}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise Incomparable(f"{path}: expected {{task: [records]}}")
    return data


def _argmax(xs: list[float]) -> int:
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def _norm_pred(doc: dict) -> int | None:
    conts = doc.get("continuations")
    if not conts:
        return None
    # lm-eval's acc_norm divides by the length of the choice text in characters;
    # the continuation is that text after the task's target delimiter (" ").
    lengths = [len(c[1:] if c.startswith(" ") else c) for c in conts]
    return _argmax([ll / max(n, 1) for ll, n in zip(doc["lls"], lengths)])


def compare_task(task: str, ref: list[dict], cand: list[dict]) -> dict:
    cand_by_id = {d["doc_id"]: d for d in cand}
    stats = {
        "task": task,
        "questions": 0,
        "choices": 0,
        "max_abs": 0.0,
        "max_at": None,
        "sum_abs": 0.0,
        "argmax_diff": 0,
        "greedy_diff": 0,
        "ref_correct": 0,
        "cand_correct": 0,
        "ref_norm_correct": 0,
        "cand_norm_correct": 0,
        "has_norm": True,
    }
    for r in ref:
        c = cand_by_id.get(r["doc_id"])
        if c is None:
            raise Incomparable(f"{task}: doc {r['doc_id']} is not in the candidate run (same --limit?)")
        if str(r["target"]) != str(c["target"]):
            raise Incomparable(f"{task}: doc {r['doc_id']}: target {r['target']!r} vs {c['target']!r}")
        if len(r["lls"]) != len(c["lls"]):
            raise Incomparable(f"{task}: doc {r['doc_id']}: {len(r['lls'])} vs {len(c['lls'])} choices")
        for key in ("context", "continuations"):
            if key in r and key in c and r[key] != c[key]:
                raise Incomparable(f"{task}: doc {r['doc_id']}: the {key} differs (different task version or data?)")
        for i, (a, b) in enumerate(zip(r["lls"], c["lls"])):
            d = abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf
            if d > stats["max_abs"] or stats["max_at"] is None:
                stats["max_abs"], stats["max_at"] = d, (r["doc_id"], i)
            stats["sum_abs"] += d
            stats["choices"] += 1
        for a, b in zip(r.get("greedy", []), c.get("greedy", [])):
            stats["greedy_diff"] += bool(a) != bool(b)
        target = int(r["target"])
        pr, pc = _argmax(r["lls"]), _argmax(c["lls"])
        stats["argmax_diff"] += pr != pc
        stats["ref_correct"] += pr == target
        stats["cand_correct"] += pc == target
        nr, nc = _norm_pred(r), _norm_pred(c)
        if nr is None or nc is None:
            stats["has_norm"] = False
        else:
            stats["ref_norm_correct"] += nr == target
            stats["cand_norm_correct"] += nc == target
        stats["questions"] += 1
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--tol", type=float, default=None, help=f"max |Δll| per choice in nats (env EVAL_TOL, default {DEFAULT_TOL})")
    ap.add_argument("--max-argmax-diffs", type=int, default=None, help="most predicted-answer disagreements per task (env EVAL_MAX_ARGMAX_DIFFS; default: not checked)")
    ap.add_argument("--tasks", default=None, help="comma-separated subset of the reference's tasks")
    args = ap.parse_args(argv)
    tol = args.tol if args.tol is not None else float(os.environ.get("EVAL_TOL", DEFAULT_TOL))
    max_flips = args.max_argmax_diffs
    if max_flips is None and os.environ.get("EVAL_MAX_ARGMAX_DIFFS"):
        max_flips = int(os.environ["EVAL_MAX_ARGMAX_DIFFS"])
    try:
        ref = load(args.reference)
        cand = load(args.candidate)
        tasks = sorted(ref) if not args.tasks else args.tasks.split(",")
        results = []
        for task in tasks:
            if task not in ref:
                raise Incomparable(f"{task}: not in the reference {args.reference}")
            if task not in cand:
                raise Incomparable(f"{task}: not in the candidate {args.candidate} (tasks there: {', '.join(sorted(cand))})")
            results.append(compare_task(task, ref[task], cand[task]))
    except Incomparable as e:
        print(f"compare: cannot compare: {e}", file=sys.stderr)
        return 2

    header = "| task | questions | max abs(dll) | at (doc, choice) | mean abs(dll) | argmax diffs | is_greedy diffs | acc ref | acc cand | acc_norm ref | acc_norm cand |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    failed = []
    for s in results:
        n = s["questions"]
        mean = s["sum_abs"] / max(s["choices"], 1)
        acc = lambda k: f"{s[k] / n:.3f}" if n else "-"  # noqa: E731
        norm = (acc("ref_norm_correct"), acc("cand_norm_correct")) if s["has_norm"] else ("-", "-")
        print(
            f"| {s['task']} | {n} | {s['max_abs']:.4f} | {s['max_at']} | {mean:.4f} | {s['argmax_diff']} | "
            f"{s['greedy_diff']} | {acc('ref_correct')} | {acc('cand_correct')} | {norm[0]} | {norm[1]} |"
        )
        if not s["max_abs"] <= tol:
            failed.append(f"{s['task']}: max abs(dll) {s['max_abs']:.4f} above {tol} nats")
        if max_flips is not None and s["argmax_diff"] > max_flips:
            failed.append(f"{s['task']}: {s['argmax_diff']} predicted answers differ (at most {max_flips})")
    sys.stdout.flush()
    if failed:
        print("compare: FAIL: " + "; ".join(failed), file=sys.stderr)
        return 1
    flips = "" if max_flips is None else f", at most {max_flips} predicted answers differ per task"
    print(f"compare: ok: every choice within {tol} nats{flips}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
