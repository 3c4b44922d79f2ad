"""Answers the model got right itself on past tasks, chosen to cover their inputs: what a
generation task's self-training replays so that its exploration does not narrow to the
task at hand (`ExperienceMemory.successes`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from synlearner.memory.base import PENDING, ReplayItem, TaskInfo, Vectors

if TYPE_CHECKING:
    from synlearner.memory.store import ExperienceMemory

SPLIT = "self_train"  # the split of the answers the model sampled itself
POOL = 4  # candidates per answer chosen: the nearest n * POOL to the new task's inputs


def farthest_point(vectors: Vectors, n: int, first: int) -> list[int]:
    """`n` rows of the L2-normalised `vectors`, each as far (cosine) from the ones already
    chosen as any row is, starting from row `first`: a cover of the rows, not a cluster."""
    if n <= 0 or len(vectors) == 0:
        return []
    chosen = [first]
    nearest = vectors @ vectors[first]  # each row's similarity with its nearest chosen row
    while len(chosen) < min(n, len(vectors)):
        nearest[chosen] = np.inf
        i = int(np.argmin(nearest))
        chosen.append(i)
        nearest = np.maximum(nearest, vectors @ vectors[i])
    return chosen


def successes(memory: ExperienceMemory, texts: Sequence[str], n: int, task_kind: str,
              exclude_task: str | None) -> list[ReplayItem]:
    """See `ExperienceMemory.successes`."""
    from synlearner.memory.records import records_by_id

    if n <= 0 or not texts:
        return []
    ids, vecs = memory._vectors(
        "SELECT id, vector FROM records WHERE kind = 'experience' AND split = ? AND correct = 1 "
        "AND prediction != '' AND task_id != ? AND instr(task_id, ?) = 0 ORDER BY id",
        (SPLIT, exclude_task or "", PENDING))
    if not ids:
        return []
    rows = records_by_id(memory._db, ids)
    infos: dict[str, TaskInfo | None] = {}
    keep: list[ReplayItem] = []
    rows_kept: list[int] = []
    for row, rid in enumerate(ids):
        task = rows[rid].task_id
        if task not in infos:
            infos[task] = memory.profiles.info(task)
        info = infos[task]
        if info is not None and info.kind == task_kind:
            keep.append(ReplayItem(rows[rid], info))
            rows_kept.append(row)
    if not keep:
        return []
    vecs = vecs[rows_kept]
    centre = memory.embed(texts).mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    pool = np.argsort(-(vecs @ centre), kind="stable")[: n * POOL]  # the most related first
    return [keep[int(pool[i])] for i in farthest_point(vecs[pool], n, 0)]
