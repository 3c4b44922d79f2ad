"""Task profiles: each task's label set and the centroid of its inputs (the `tasks` table).

They answer which past tasks are like a new one (`nearest`) and which task an input most
likely belongs to (`route`), by the cosine of normalised centroids.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np

from synlearner.memory.base import TaskInfo, Vectors


def _unit(v: Vectors) -> Vectors:
    out: Vectors = (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(
        np.float32)
    return out


class TaskProfiles:
    def __init__(self, db: sqlite3.Connection,
                 tx: Callable[[], AbstractContextManager[None]]) -> None:
        self._db = db
        self._tx = tx

    def put(self, info: TaskInfo, vectors: Vectors) -> None:
        centroid = _unit(np.asarray(vectors, dtype=np.float32).mean(axis=0))
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (info.task_id, info.kind, info.instruction, json.dumps(list(info.labels)),
                 info.examples, centroid.tobytes(), time.time()),
            )

    def info(self, task_id: str) -> TaskInfo | None:
        row = self._db.execute(
            "SELECT task_id, kind, instruction, labels, examples FROM tasks WHERE task_id=?",
            (task_id,),
        ).fetchone()
        if row is None:
            return None
        return TaskInfo(row[0], row[1], row[2], tuple(json.loads(row[3])), int(row[4]))

    def ids(self) -> list[str]:
        return [str(r[0]) for r in self._db.execute("SELECT task_id FROM tasks ORDER BY task_id")]

    def _centroids(self, exclude: str | None = None) -> tuple[list[str], Vectors]:
        rows = [r for r in self._db.execute(
            "SELECT task_id, centroid FROM tasks ORDER BY task_id") if r[0] != exclude]
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [str(r[0]) for r in rows], np.stack(
            [np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def nearest(self, vectors: Vectors, k: int,
                exclude: str | None = None) -> list[tuple[str, float]]:
        """Tasks ranked by the cosine of their centroid with the centroid of `vectors`."""
        ids, mat = self._centroids(exclude)
        if not ids or len(vectors) == 0:
            return []
        sims = mat @ _unit(np.asarray(vectors, dtype=np.float32).mean(axis=0))
        order = np.argsort(-sims, kind="stable")[:k]
        return [(ids[i], float(sims[i])) for i in order]

    def route(self, vectors: Vectors) -> list[str | None]:
        """For each vector, the task whose centroid is nearest; None when there is none."""
        ids, mat = self._centroids()
        if not ids or len(vectors) == 0:
            return [None] * len(vectors)
        return [ids[i] for i in (_unit(np.asarray(vectors)) @ mat.T).argmax(axis=1)]
