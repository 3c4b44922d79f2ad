"""A synthesis stream from a real stream with two rating tasks (std4's Amazon and Yelp, same
five labels), for `synlearner bench`: the rating task with all its data (the judge), a
synthesis task on a few of its reviews per label, and the other rating task with only a
few examples per label, asking the synthesis task for synthetic ones. Nothing is copied:
the stream is written where `--out` says, from the data folder given.

    python bench/std4_synthesis.py ../shared/data/std4 --out /tmp/std4-synthesis.jsonl
    synlearner bench /tmp/std4-synthesis.jsonl --steps 24 --out bench-std4-synthesis
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def per_label(examples: list[dict[str, Any]], labels: list[str], n: int) -> list[dict[str, Any]]:
    """The first `n` examples of each label, in the labels' turn."""
    by = {lab: [e for e in examples if e["output"] == lab][:n] for lab in labels}
    return [by[lab][i] for i in range(n) for lab in labels if i < len(by[lab])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="the folder with 01-amazon.json and 03-yelp.json")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--shots-per-label", type=int, default=16, help="the few-shot task's")
    p.add_argument("--writer-per-label", type=int, default=20, help="the synthesis task's")
    p.add_argument("--count", type=int, default=80, help="synthetic texts asked for")
    args = p.parse_args()
    judge = json.loads((args.data / "01-amazon.json").read_text())
    few = json.loads((args.data / "03-yelp.json").read_text())
    labels = judge["labels"]
    assert few["labels"] == labels, "the two tasks must share their labels"
    writer = {
        "schema": "synlearner.task/v1", "task_id": "write-ratings", "kind": "synthesis",
        "instruction": "Write a customer review.", "labels": labels,
        "train": per_label(judge["train"], labels, args.writer_per_label),
        "eval": per_label(judge["eval"], labels, 5),
        "synthesis": {"descriptions": {lab: f"the customer's rating is {lab}" for lab in labels},
                      "count": 32, "shots": 2, "judge": judge["task_id"]},
    }
    few_shot = {**few, "task_id": f"few-{few['task_id']}",
                "train": per_label(few["train"], labels, args.shots_per_label),
                "synthesize": {"count": args.count, "from": "write-ratings"}}
    args.out.write_text("".join(json.dumps(t) + "\n" for t in (judge, writer, few_shot)))
    print(f"wrote {args.out}: {judge['task_id']} ({len(judge['train'])} train), write-ratings "
          f"({len(writer['train'])}), {few_shot['task_id']} ({len(few_shot['train'])} train, "
          f"{len(few_shot['eval'])} eval, {args.count} synthetic asked for)")


if __name__ == "__main__":
    main()
