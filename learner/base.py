"""Interfaces of the learner package. Importing this module never imports torch."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


class LearningError(RuntimeError):
    """A valid task that cannot be learned; the message names what (the task ends `failed`)."""


def check_learnable(task: Task) -> None:
    """Raise `LearningError` for a task no learner can learn from its train split."""
    if task.kind != "classification":
        return
    seen = {e.output for e in task.train}
    if len(seen) < 2:
        raise LearningError(f"train: every example has the label {next(iter(seen))!r}; "
                            "a classifier needs at least two classes to learn from")
    missing = [lab for lab in task.labels if lab not in seen]
    if missing:
        raise LearningError(f"train: labels {missing[:5]!r} have no training examples"
                            + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))


@dataclass(frozen=True)
class Negative:
    """A wrong answer recalled from the error memory for a prompt: `own` when the model gave
    it to this very input before, `neighbour` when it was wrong for the nearest input in the
    memory (a hard negative that is close, and still wrong here only if the reward says so)."""

    text: str
    source: str  # "own" | "neighbour"
    similarity: float = 1.0


SHARED = "@shared"  # the one adapter of the shared-adapter strategies (not a valid task id)
CONSOLIDATED = "@consolidated"  # the merge of the per-task adapters, for task-agnostic use


def consolidated_key(kind: str) -> str:
    """The consolidated adapter of one task kind (kinds can share a learner, and a bank)."""
    return f"{CONSOLIDATED}-{kind}"


@dataclass(frozen=True)
class Judge:
    """Who judges a synthesised text's label: the classification learner scoring `task`'s
    labels with `adapter` (None: the base encoder, zero-shot)."""

    task: Task
    adapter: str | None = None

    @classmethod
    def of(cls, task_id: str, instruction: str, labels: Sequence[str],
           adapter: str | None = None) -> Judge:
        """A judge from what the classifier needs of its task (no examples)."""
        return cls(Task(task_id, "classification", instruction, tuple(labels), (), ()), adapter)


@dataclass
class StageResult:
    """What one stage of training produced: its optimiser steps, its last loss, its figures
    (JSON-able, its own fields) and the answers it sampled (for the error memory and the
    stages after it)."""

    steps: int
    loss: float = math.nan
    figures: Mapping[str, Any] = field(default_factory=dict)
    attempts: Sequence[Prediction] = ()


class Stage(Protocol):
    """Training a method adds to a task (`learner/method.py`): run by the task's learner on
    adapter `key`, after the stages before it (`earlier`: the answers they sampled)."""

    @property
    def name(self) -> str:
        """The method's name: its figures go in the outcome's `extras[name]`."""
        ...

    def train(self, learner: Any, task: Task, key: str, replay: Sequence[ReplayItem],
              steps: int, seed: int, progress: Progress,
              earlier: Sequence[Prediction]) -> StageResult: ...


@dataclass(frozen=True)
class LearnPlan:
    """How to learn one task: which adapter to train, where it starts, how long.

    `adapter` is the task id (one adapter per task) or `SHARED`. A new adapter starts as a
    copy of `init_from`, or fresh when that is None; with `resume` an existing adapter keeps
    its weights and trains on. `steps` fixes the optimiser steps (0: the learner's own rule).
    With `probe_steps` > 0 (and an `init_from` or replay), the learner first trains each
    possible start (fresh, the copy, fresh without replay) for `probe_steps` on part of the
    train split, scores them on the held-out rest (`probe_holdout`, at most
    `probe_max_holdout` examples), trains on from the winner, and keeps the copy
    unless it is worse there than fresh (higher held-out loss and no better accuracy:
    negative transfer falls back to fresh), and the replay unless it makes the start worse
    than training on the task alone. A task too short for that within `probe_budget` has
    its start checked before training: the copy is kept unless it answers the task's train
    examples worse than the base model. With `curve_every` > 0 it records eval accuracy every
    that many steps (the learning curve).
    """

    adapter: str
    init_from: str | None = None
    resume: bool = False
    steps: int = 0
    probe_steps: int = 0
    probe_holdout: float = 0.25
    probe_max_holdout: int = 128  # held-out examples at most (the probe's scoring cost)
    probe_budget: float = 1.0  # the share of the task's steps the probe's losing arms may take
    curve_every: int = 0
    # the training the task's methods do, in order (`learner/method.py`); empty: the
    # learner's own (generation and synthesis learners run supervised fine-tuning)
    stages: Sequence[Stage] = ()
    # synthesis tasks: the judge of their texts' labels (None: zero-shot on their labels)
    judge: Judge | None = None


@dataclass(frozen=True)
class InitProbe:
    """Held-out scores of the starts a task could learn from, after the same probe steps.

    `fresh`: a fresh adapter with replay; `transferred`: a copy of `candidate`'s adapter
    with replay; `alone`: a fresh adapter without replay (the per-task baseline). Accuracy
    and mean cross-entropy on `holdout` train examples kept out of the probe's training.
    `steps` 0: the check before training of a task too short for trained arms (`fresh` is
    the base model, `transferred` the candidate's adapter as it is, `alone` None).
    """

    candidate: str | None
    steps: int
    holdout: int
    fresh: float
    fresh_loss: float
    transferred: float | None
    transferred_loss: float | None
    alone: float | None
    alone_loss: float | None
    chosen: str | None  # `candidate`, or None for a fresh start
    replay: bool  # whether the task trains with the recalled replay


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
    probe: InitProbe | None = None
    curve: Sequence[tuple[int, float]] = field(default_factory=tuple)  # (step, eval accuracy)
    max_length: int = 0  # the model's input length in tokens (0: not limited)
    inputs_cut: int = 0  # the task's inputs (train and eval) longer than that, cut to fit
    # each method's figures by its name (`learner/method.py`), and the kind's own figures
    # under the kind's name (a synthesis task's agreement and diversity)
    extras: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@runtime_checkable
class Learner(Protocol):
    """One learner per task kind. Adapters are keyed by task id, `SHARED` or `CONSOLIDATED`."""

    kind: str

    @property
    def embedder(self) -> Embedder: ...

    def learn(
        self,
        task: Task,
        replay: Sequence[ReplayItem],
        plan: LearnPlan,
        progress: Progress = no_progress,
    ) -> LearnOutcome: ...

    def check(self, task: Task) -> None:
        """Raise `ValueError` naming the field if this learner cannot take `task` (what the
        message schema cannot know, e.g. a reward that needs a verifier); the daemon
        dead-letters the message with that reason."""
        ...

    def merge(self, sources: Sequence[str], name: str, method: str) -> None:
        """Build adapter `name` from the adapters `sources` (e.g. TIES merging)."""
        ...

    def evaluate(self, task: Task, adapter: str | None) -> float:
        """Score on `task.eval` with `adapter` (an adapter key; None: the base model)."""
        ...

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]: ...

    def has_adapter(self, task_id: str) -> bool: ...

    def drop_adapter(self, task_id: str) -> None:
        """Forget adapter `task_id` (in memory; its saved folders are the state's)."""
        ...

    def save_adapter(self, task_id: str, path: Path) -> None: ...

    def load_adapter(self, task_id: str, path: Path) -> None: ...
