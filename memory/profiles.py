"""Task profiles: what each task asks and what its inputs look like (the `tasks` table).

A profile holds three unit vectors: the task's instruction, the mean of its label names and
the centroid of its inputs. Which past tasks are like a new one (`nearest`, `similarity`) is
a weighted mean of the three cosines (`memory.similarity`), so two tasks that ask the same
question over the same labels are near even when their inputs look different, and two
tasks whose inputs share a layout (`Title: … Text: …`) are not near for that alone. Which
task an input most likely belongs to (`route`) is by the input centroids only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from synlearner.memory.base import TaskInfo, Vectors


def _unit(v: Vectors) -> Vectors:
    if v.size == 0:
        return v.astype(np.float32)
    out: Vectors = (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(
        np.float32)
    return out


PARTS = ("instruction", "labels", "inputs")


@dataclass(frozen=True)
class Profile:
    """A task's description as unit vectors (an empty vector: the part is missing)."""

    instruction: Vectors
    labels: Vectors
    inputs: Vectors


def describe(info: TaskInfo, inputs: Vectors, embed: Callable[[list[str]], Vectors]) -> Profile:
    """The profile of a task from its info, its inputs' vectors and the memory's encoder."""
    none = np.zeros(0, dtype=np.float32)
    texts = ([info.instruction] if info.instruction.strip() else []) + list(info.labels)
    vecs = embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
    has_instruction = bool(info.instruction.strip())
    labels = vecs[1:] if has_instruction else vecs
    return Profile(
        instruction=_unit(vecs[0]) if has_instruction else none,
        labels=_unit(labels.mean(axis=0)) if len(labels) else none,
        inputs=_unit(np.asarray(inputs, dtype=np.float32).mean(axis=0)) if len(inputs) else none,
    )


def similarity(a: Profile, b: Profile, weights: Mapping[str, float]) -> float:
    """The weighted mean of the cosines of the parts both profiles have."""
    total = weight = 0.0
    for part in PARTS:
        u, v = getattr(a, part), getattr(b, part)
        if len(u) and len(v) and len(u) == len(v) and weights[part] > 0:
            total += weights[part] * float(u @ v)
            weight += weights[part]
    return total / weight if weight else 0.0


class TaskProfiles:
    def __init__(self, db: sqlite3.Connection,
                 tx: Callable[[], AbstractContextManager[None]],
                 weights: Mapping[str, float] | None = None) -> None:
        self._db = db
        self._tx = tx
        self.weights = dict(weights or {"instruction": 0.4, "labels": 0.4, "inputs": 0.2})
        columns = {r[1] for r in db.execute("PRAGMA table_info(tasks)")}
        for column in ("instruction_vec", "labels_vec"):  # memories written before
            if column not in columns:
                with self._tx():
                    db.execute(f"ALTER TABLE tasks ADD COLUMN {column} BLOB NOT NULL DEFAULT x''")

    def put(self, info: TaskInfo, profile: Profile) -> None:
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO tasks (task_id, kind, instruction, labels, examples, "
                "centroid, updated_at, instruction_vec, labels_vec) VALUES (?,?,?,?,?,?,?,?,?)",
                (info.task_id, info.kind, info.instruction, json.dumps(list(info.labels)),
                 info.examples, profile.inputs.tobytes(), time.time(),
                 profile.instruction.tobytes(), profile.labels.tobytes()),
            )

    def profiles(self, exclude: str | None = None) -> dict[str, Profile]:
        rows = self._db.execute(
            "SELECT task_id, instruction_vec, labels_vec, centroid FROM tasks ORDER BY task_id")
        return {str(r[0]): Profile(*(np.frombuffer(b, dtype=np.float32) for b in r[1:]))
                for r in rows if r[0] != exclude}

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

    def nearest(self, profile: Profile, k: int,
                exclude: str | None = None) -> list[tuple[str, float]]:
        """Tasks ranked by their similarity with `profile` (most similar first)."""
        sims = [(tid, similarity(profile, p, self.weights))
                for tid, p in self.profiles(exclude).items()]
        return sorted(sims, key=lambda x: -x[1])[:k]

    def similarity_matrix(self) -> tuple[list[str], list[list[float]]]:
        """Every stored task's similarity with every other (rows and columns: task ids)."""
        profiles = self.profiles()
        ids = list(profiles)
        return ids, [[round(similarity(profiles[a], profiles[b], self.weights), 4) for b in ids]
                     for a in ids]

    def route(self, vectors: Vectors) -> list[str | None]:
        """For each vector, the task whose centroid is nearest; None when there is none."""
        ids, mat = self._centroids()
        if not ids or len(vectors) == 0:
            return [None] * len(vectors)
        return [ids[i] for i in (_unit(np.asarray(vectors)) @ mat.T).argmax(axis=1)]
