"""Helpers for the ``reka_*`` lm-eval tasks: local data loading and HellaSwag cleanup.

The task YAMLs name their files the way lm-eval's ``json`` loader would
(``dataset_path: json``, ``dataset_kwargs.data_files``), but with paths relative
to the evaluation data directory that ``scripts/eval-data.sh`` fills. ``load``
(the tasks' ``custom_dataset``) resolves them against that directory:

    $REKA_EVAL_DATA, else $REKA_CACHE_DIR/eval-data, else ~/.cache/reka/eval-data

and reads the jsonl files itself into an in-memory ``datasets.DatasetDict``, so
no dataset builder, download or cache directory is involved.
"""

from __future__ import annotations

import json
import os
import re

import datasets


def data_dir() -> str:
    if os.environ.get("REKA_EVAL_DATA"):
        return os.environ["REKA_EVAL_DATA"]
    cache = os.environ.get("REKA_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "reka")
    return os.path.join(cache, "eval-data")


def load(data_files: dict[str, str] | None = None, **_metadata) -> datasets.DatasetDict:
    """``custom_dataset`` of every reka task: one split per entry of ``data_files``.

    lm-eval passes the task's metadata and ``dataset_kwargs`` as keyword
    arguments; only ``data_files`` is used.
    """
    if not data_files:
        raise ValueError("reka task without dataset_kwargs.data_files")
    root = data_dir()
    splits = {}
    for split, rel in data_files.items():
        path = rel if os.path.isabs(rel) else os.path.join(root, rel)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: run scripts/eval-data.sh first "
                f"(or point REKA_EVAL_DATA at the converted data)"
            )
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)


_BRACKETED = re.compile(r"\[.*?\]")


def _clean(text: str) -> str:
    """HellaSwag's usual text cleanup (the WikiHow half carries "[title]"-style
    markup): trim, turn " [title]" into a sentence break, drop any other
    bracketed tag, and close the double space that leaves behind."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = _BRACKETED.sub("", text)
    return text.replace("  ", " ")


def _hellaswag_doc(doc: dict) -> dict:
    context = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return {
        "query": _clean(doc["activity_label"] + ": " + context),
        "choices": [_clean(ending) for ending in doc["endings"]],
        "gold": int(doc["label"]),
    }


def hellaswag_process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.map(_hellaswag_doc)
