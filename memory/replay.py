"""Replay sampling policies, chosen by name (`memory.replay.policy`).

Each policy takes the memory and a `ReplayRequest` and returns up to `n` past records from
tasks other than the one being learned (only of tasks of `task_kind` when the request names
one: chosen among those, never cut to `n` first and filtered after), deterministically for
a given seed. Only records of
the train split, and the synthetic examples a task trained on (split `synthetic`), are
ever replayed: evaluation examples (and the mistakes made on them) stay in memory for
analysis but never train an adapter, or the accuracy matrix would measure memorisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from synlearner.memory.base import Record, RecordKind, ReplayRequest, committed_id

if TYPE_CHECKING:
    from synlearner.memory.store import ExperienceMemory

Policy = Callable[["ExperienceMemory", ReplayRequest], list[Record]]
REPLAYED = ("train", "synthetic")  # the only splits replay draws from


def _past(
    memory: ExperienceMemory, req: ReplayRequest, kind: RecordKind = "experience"
) -> list[Record]:
    """Every replayable record of another task (of `req.task_kind`'s tasks when it names
    one: filtered in SQL by the kind in the tasks table, never by a list of task ids)."""
    return [r for r in memory.records(kind=kind, split=REPLAYED, task_kind=req.task_kind)
            if committed_id(r.task_id) != req.task_id]


def reservoir(memory: ExperienceMemory, req: ReplayRequest) -> list[Record]:
    """Uniform over every past example."""
    past = _past(memory, req)
    if len(past) <= req.n:
        return past
    rng = np.random.default_rng(req.seed)
    return [past[i] for i in sorted(rng.choice(len(past), size=req.n, replace=False))]


def balanced(memory: ExperienceMemory, req: ReplayRequest) -> list[Record]:
    """The same number from every past task (round robin over shuffled tasks' examples)."""
    rng = np.random.default_rng(req.seed)
    by_task: dict[str, list[Record]] = {}
    for rec in _past(memory, req):
        by_task.setdefault(rec.task_id, []).append(rec)
    queues = []
    for task_id in sorted(by_task):
        recs = by_task[task_id]
        queues.append([recs[i] for i in rng.permutation(len(recs))])
    out: list[Record] = []
    depth = 0
    while len(out) < req.n and any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out[: req.n]


def _nearest(memory: ExperienceMemory, req: ReplayRequest, kind: RecordKind, n: int) -> list[Record]:
    """Round robin over the queries' nearest neighbours, most similar first, unique.

    Neighbour lists of similar queries overlap, so the search widens until `n` distinct
    records are found or every candidate has been seen.
    """
    if n <= 0 or len(req.queries) == 0:
        return []
    k = max(1, -(-n // len(req.queries)) * 2)
    while True:
        hits = memory.search(req.queries, k, kind=kind, exclude_task=req.task_id,
                             split=REPLAYED, task_kind=req.task_kind)
        seen: set[int] = set()
        out: list[Record] = []
        for depth in range(k):
            for row in hits:
                if depth < len(row) and row[depth].record.id not in seen \
                        and committed_id(row[depth].record.task_id) != req.task_id:
                    seen.add(row[depth].record.id)
                    out.append(row[depth].record)
                    if len(out) == n:
                        return out
        exhausted = all(len(row) < k for row in hits)
        if exhausted or k >= 1024:
            return out
        k *= 4


def nearest(memory: ExperienceMemory, req: ReplayRequest) -> list[Record]:
    """Past examples nearest to the new task's examples."""
    return _nearest(memory, req, "experience", req.n)


def errors_first(memory: ExperienceMemory, req: ReplayRequest) -> list[Record]:
    """Past mistakes (nearest first), then the nearest past examples."""
    errors = _nearest(memory, req, "error", req.n)
    seen = {(r.task_id, r.input) for r in errors}
    rest = [r for r in _nearest(memory, req, "experience", req.n) if (r.task_id, r.input) not in seen]
    return (errors + rest)[: req.n]


POLICIES: dict[str, Policy] = {
    "reservoir": reservoir,
    "balanced": balanced,
    "nearest": nearest,
    "errors_first": errors_first,
}


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(
            f"memory.replay.policy: unknown policy {name!r} (known: {sorted(POLICIES)})"
        ) from None
