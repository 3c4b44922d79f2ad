"""Interfaces of the memory package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
RecordKind = Literal["experience", "error"]
PENDING = "#"  # `<task_id>#<content hash>`: records of a version not committed yet


def pending_id(task_id: str, content_hash: str) -> str:
    """Where a version's records wait until its commit (task ids never contain '#')."""
    return f"{task_id}{PENDING}{content_hash}"


def committed_id(task_id: str) -> str:
    """The task id a (possibly pending) memory task id belongs to."""
    return task_id.split(PENDING, 1)[0]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed width."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


@dataclass(frozen=True)
class Record:
    """One example the daemon saw (`experience`) or got wrong (`error`)."""

    task_id: str
    input: str
    target: str
    kind: RecordKind = "experience"
    split: str = "train"
    prediction: str = ""
    correct: bool = True
    loss: float = 0.0
    timestamp: float = 0.0
    id: int = -1


@dataclass(frozen=True)
class TaskInfo:
    task_id: str
    kind: str
    instruction: str
    labels: tuple[str, ...]
    examples: int


@dataclass(frozen=True)
class ReplayItem:
    """A recalled example with what is needed to train on it (its own task's label set)."""

    record: Record
    task: TaskInfo


@dataclass(frozen=True)
class Hit:
    record: Record
    score: float


@dataclass(frozen=True)
class ReplayRequest:
    task_id: str
    queries: Vectors  # embeddings of the new task's training inputs
    n: int
    seed: int = 0
    kinds: tuple[RecordKind, ...] = field(default=("experience", "error"))
    # only records of past tasks of this task kind (None: any kind). Applied before the
    # sample is cut to `n`, so that a kind's replay is never crowded out by another's.
    task_kind: str | None = None


class Memory(Protocol):
    """The experience and error memory, as the daemon uses it.

    Callers pass texts; the memory embeds them with its own encoder (`memory.embedder`).
    Records of a version being learned are written under `pending_id(...)` and take the
    task's id only at its commit (`adopt`), replacing the previous version's in one
    transaction: a version that fails or crashes never touches what is committed. Replay
    only ever returns records of the splits `train` and `synthetic` (the synthetic examples
    a task trained on): evaluation data never trains anything.
    """

    def register_task(self, info: TaskInfo, texts: Sequence[str]) -> None:
        """Remember a task's label set and the centroid of its inputs `texts`."""
        ...

    def add(self, records: Sequence[Record]) -> list[int]: ...

    def forget_task(self, task_id: str) -> int: ...

    def adopt(self, pending: str, task_id: str) -> None:
        """Give `pending`'s records and profile to `task_id`, dropping `task_id`'s old ones."""
        ...

    def task_ids(self) -> list[str]:
        """Every task id with a profile, pending ones included."""
        ...

    def similar_tasks(
        self, info: TaskInfo, texts: Sequence[str], k: int, exclude: str | None = None
    ) -> list[tuple[str, float]]:
        """Past tasks ranked by their similarity with the task `info` whose inputs are
        `texts` (what it asks, its labels, its inputs)."""
        ...

    def task_similarity(self) -> tuple[list[str], list[list[float]]]:
        """Task ids and the similarity of each stored task with each other."""
        ...

    def task_info(self, task_id: str) -> TaskInfo | None: ...

    def route(self, texts: Sequence[str]) -> list[str | None]:
        """For each text, the task with the nearest input centroid (None: no tasks yet)."""
        ...

    def recall(self, task_id: str, texts: Sequence[str], seed: int = 0,
               task_kind: str | None = None) -> list[ReplayItem]:
        """Past examples to replay while learning `task_id` (inputs `texts`), as configured
        by `memory.replay`; never the task's own, never evaluation data; only of past tasks
        of `task_kind` when given (chosen among those, not filtered after the choice)."""
        ...

    def negatives(self, texts: Sequence[str], k: int, task_kind: str = "generation",
                  splits: Sequence[str] = ("train", "self_train")) -> list[list[Hit]]:
        """For each text, recorded wrong answers: to this very input first, then to its `k`
        nearest other inputs; of tasks of `task_kind`, never from evaluation splits."""
        ...

    def successes(self, texts: Sequence[str], n: int, task_kind: str = "generation",
                  exclude_task: str | None = None) -> list[ReplayItem]:
        """Up to `n` answers the model itself got right on related past tasks of `task_kind`
        (split `self_train`), chosen to cover their inputs rather than crowd one region."""
        ...

    def counts(self) -> dict[str, int]: ...

    def compact(self) -> dict[str, int]:
        """Drop duplicate records and reclaim the space of deleted ones (a scheduled job);
        returns `duplicates` removed and `freed_bytes`."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
