"""Recorded wrong answers for preference pairs: a prompt's own errors, then its neighbours'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from synlearner.memory.base import Hit, Record

if TYPE_CHECKING:
    from synlearner.memory.store import ExperienceMemory


def negatives(memory: ExperienceMemory, texts: Sequence[str], k: int, task_kind: str,
              splits: Sequence[str]) -> list[list[Hit]]:
    """See `ExperienceMemory.negatives`."""
    from synlearner.memory.records import COLS, row_to_record

    if not texts:
        return []
    kinds: dict[str, str | None] = {}

    def usable(rec: Record) -> bool:
        if rec.split not in splits or not rec.prediction:
            return False
        if rec.task_id not in kinds:
            info = memory.profiles.info(rec.task_id)
            kinds[rec.task_id] = info.kind if info is not None else None
        return kinds[rec.task_id] == task_kind

    own: dict[str, list[Record]] = {t: [] for t in texts}
    unique = list(own)
    marks = ",".join("?" * len(splits))
    for i in range(0, len(unique), 500):
        chunk = unique[i : i + 500]
        rows = memory._db.execute(
            f"SELECT {COLS} FROM records WHERE kind = 'error' AND split IN ({marks}) "
            f"AND input IN ({','.join('?' * len(chunk))}) ORDER BY id DESC",
            [*splits, *chunk])
        for row in rows:
            rec = row_to_record(row)
            if usable(rec) and len(own[rec.input]) < max(k, 1):
                own[rec.input].append(rec)
    queries = memory.embed(texts)
    out: list[list[Hit]] = [[Hit(r, 1.0) for r in own[t]] for t in texts]
    todo, n = list(range(len(texts))) if k > 0 else [], 4 * k
    while todo:  # widen the search for the texts whose nearest errors were not usable
        hits = memory.search(queries[todo], n, kind="error")
        again = []
        for i, row in zip(todo, hits, strict=True):
            near = [h for h in row if h.record.input != texts[i] and usable(h.record)][:k]
            if len(near) < k and len(row) == n and n < 1024:
                again.append(i)
            else:
                out[i] += near
        todo, n = again, n * 4
    return out
