"""Task similarity on a stream: what the memory's task profiles say, against input centroids
alone (what similarity meant before instructions and labels counted).

For each task, in stream order, prints its nearest earlier task by both measures, then the
similarity matrix (`memory.similarity` weights, base encoder of the configured model).

    python bench/bench_similarity.py ../shared/data/std4
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from synlearner.daemon.strategies import task_info  # noqa: E402
from synlearner.daemon.tools.cli import _read_task_files  # noqa: E402
from synlearner.learner.classifier import BiEncoderClassifier  # noqa: E402
from synlearner.memory.config import SimilarityConfig  # noqa: E402
from synlearner.memory.profiles import describe, similarity  # noqa: E402
from synlearner.stream.boundary import decode  # noqa: E402
from synlearner.stream.schema import Limits  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stream", help="a task file or a folder of them")
    ap.add_argument("--sample", type=int, default=256, help="train inputs per task (seeded)")
    args = ap.parse_args()
    tasks = [decode(raw, Limits()) for _, raw in _read_task_files([args.stream])]
    clf = BiEncoderClassifier()
    rng = np.random.default_rng(0)
    profiles = []
    for task in tasks:
        keep = sorted(rng.choice(len(task.train), min(args.sample, len(task.train)),
                                 replace=False))
        inputs = clf.embedder.embed([task.train[i].input for i in keep])
        profiles.append(describe(task_info(task), inputs, clf.embedder.embed))
    full = SimilarityConfig().model_dump()
    inputs_only = {"instruction": 0.0, "labels": 0.0, "inputs": 1.0}
    ids = [t.task_id for t in tasks]
    print(f"{'task':<16} {'nearest earlier (profile)':<32} {'nearest earlier (inputs only)':<32}")  # noqa: T201
    for k in range(1, len(tasks)):
        best = [max(((ids[j], similarity(profiles[k], profiles[j], w)) for j in range(k)),
                    key=lambda x: x[1]) for w in (full, inputs_only)]
        print(f"{ids[k]:<16} {best[0][0] + f' ({best[0][1]:.3f})':<32} "  # noqa: T201
              f"{best[1][0] + f' ({best[1][1]:.3f})':<32}")
    print("\nsimilarity (memory.similarity: " + ", ".join(f"{k} {v}" for k, v in full.items())  # noqa: T201
          + ")")
    print(f"{'':<16}" + "".join(f"{t[:9]:>10}" for t in ids))  # noqa: T201
    for a, pa in zip(ids, profiles, strict=True):
        print(f"{a:<16}" + "".join(f"{similarity(pa, pb, full):>10.3f}" for pb in profiles))  # noqa: T201


if __name__ == "__main__":
    main()
