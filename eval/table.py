"""Write the markdown results table of one scripts/eval.sh run.

Usage: ``python eval/table.py RUN_DIR``

RUN_DIR is ``eval/results/<timestamp>/`` as scripts/eval.sh lays it out::

    run.json                     model, tasks, limit, commit, date, versions
    times.tsv                    backend <TAB> task <TAB> wall seconds <TAB> exit status
    raw/<backend>/<task>/...     lm-eval --output_path of each (backend, task) run

where backend is ``server`` (reka-host through lm-eval's local-completions /
local-chat-completions) or ``hf`` (lm-eval's own transformers backend on the
same GGUF). Writes RUN_DIR/table.md: one row per (task, metric) with each
backend's value ± stderr and the wall time of each backend's run of that task
(lm-eval start-up, model load and all requests). Groups (reka_mmlu) show
the group's aggregate only; the per-subject numbers stay in the raw results.
"""

from __future__ import annotations

import glob
import json
import os
import sys

# Metric keys shown per task, in order: (lm-eval results key, shown as).
METRICS = {
    "generate_until": [
        ("exact_match,strict-match", "exact_match (strict)"),
        ("exact_match,flexible-extract", "exact_match (flexible)"),
    ],
    "default": [("acc,none", "acc"), ("acc_norm,none", "acc_norm")],
}


def newest_results(run_dir: str, backend: str, task: str) -> dict | None:
    files = glob.glob(os.path.join(run_dir, "raw", backend, task, "**", "results_*.json"), recursive=True)
    if not files:
        return None
    with open(max(files, key=os.path.basename), encoding="utf-8") as fh:
        return json.load(fh)


def cell(results: dict | None, task: str, key: str) -> str:
    if results is None:
        return "—"
    row = results.get("results", {}).get(task, {})
    if key not in row:
        return "—"
    name, filt = key.split(",", 1)
    value = row[key]
    stderr = row.get(f"{name}_stderr,{filt}")
    if isinstance(stderr, (int, float)):
        return f"{value:.4f} ± {stderr:.4f}"
    return f"{value:.4f}"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: table.py RUN_DIR", file=sys.stderr)
        return 2
    run_dir = sys.argv[1]
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as fh:
        run = json.load(fh)
    times: dict[tuple[str, str], tuple[float, int]] = {}
    with open(os.path.join(run_dir, "times.tsv"), encoding="utf-8") as fh:
        for line in fh:
            backend, task, secs, rc = line.rstrip("\n").split("\t")
            times[(backend, task)] = (float(secs), int(rc))

    def wall(backend: str, task: str) -> str:
        if (backend, task) not in times:
            return "—"
        secs, rc = times[(backend, task)]
        return f"{secs:.0f} s" + ("" if rc == 0 else f" (exit {rc})")

    lines = [
        f"# lm-eval results: {run['model']}",
        "",
        f"- date: {run['date']}; commit: {run['commit']}; lm-eval {run['lm_eval']}",
        f"- server: {run.get('served_by', 'reka-host')} serving `{run['gguf']}` as `{run['model']}` "
        f"(local-completions, remote tokenizer, tokenized requests, num_concurrent={run['concurrent']}; "
        f"reka_gsm8k through local-chat-completions with --apply_chat_template)",
        f"- hf: {run['hf'] or 'not run (EVAL_HF=1 runs it)'}",
        f"- limit: {run['limit'] or 'none (full sets)'}",
        "",
        "| task | metric | server | hf | server wall | hf wall |",
        "|---|---|---|---|---|---|",
    ]
    for task in run["tasks"]:
        srv = newest_results(run_dir, "server", task)
        hf = newest_results(run_dir, "hf", task)
        kind = "generate_until" if task in run["generation_tasks"] else "default"
        shown = False
        for key, label in METRICS[kind]:
            if any(r is not None and key in r.get("results", {}).get(task, {}) for r in (srv, hf)):
                lines.append(
                    f"| {task} | {label} | {cell(srv, task, key)} | {cell(hf, task, key)} | "
                    f"{wall('server', task)} | {wall('hf', task)} |"
                )
                shown = True
        if not shown:
            lines.append(f"| {task} | — | — | — | {wall('server', task)} | {wall('hf', task)} |")
    lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(run_dir, "table.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
