"""Interfaces of the learner package. Importing this module never imports torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from synlearner.memory.base import Embedder, ReplayItem
from synlearner.stream.schema import Task

# progress(phase, step, total, loss): called during long work so the daemon can report it
Progress = Callable[[str, int, int, float], None]


def no_progress(phase: str, step: int, total: int, loss: float) -> None:
    """A `Progress` that reports nothing."""


@dataclass(frozen=True)
class Prediction:
    split: str
    input: str
    target: str
    prediction: str
    correct: bool
    loss: float


@dataclass(frozen=True)
class LearnOutcome:
    """What learning one task produced.

    `zero_shot` is the eval score with no adapter (the base model), `initial` the eval score
    with the task's adapter as initialised (fresh or copied from `init_from`), before any
    training on the task; `final` is the eval score after training.
    """

    zero_shot: float
    initial: float
    final: float
    init_from: str | None
    steps: int
    train_examples: int
    replay_examples: int
    train_loss: float
    predictions: Sequence[Prediction] = field(default_factory=tuple)
    seconds: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Learner(Protocol):
    """One learner per task kind. Adapters are named by task id."""

    kind: str

    @property
    def embedder(self) -> Embedder: ...

    def learn(
        self,
        task: Task,
        replay: Sequence[ReplayItem],
        init_from: str | None,
        progress: Progress = no_progress,
    ) -> LearnOutcome: ...

    def evaluate(self, task: Task, adapter: str | None) -> float:
        """Score on `task.eval` with `adapter` (None: the base model)."""
        ...

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]: ...

    def has_adapter(self, task_id: str) -> bool: ...

    def save_adapter(self, task_id: str, path: Path) -> None: ...

    def load_adapter(self, task_id: str, path: Path) -> None: ...
