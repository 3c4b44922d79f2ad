"""Supervised fine-tuning: the generation learner on prompt/answer pairs (loss on the answer
only), the synthesis learner on request/text pairs, each with the task's replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synlearner.learner.base import Prediction, Progress, StageResult
from synlearner.learner.method import Method, MethodContext, register
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Task


@dataclass(frozen=True)
class SupervisedStage:
    name: str = "sft"

    def train(self, learner: Any, task: Task, key: str, replay: Sequence[ReplayItem],
              steps: int, seed: int, progress: Progress,
              earlier: Sequence[Prediction]) -> StageResult:
        return learner.supervised(task, key, replay, steps, seed, progress)  # type: ignore[no-any-return]  # each learner's own


@register
class Sft(Method):
    name = "sft"
    kinds = frozenset({"generation", "synthesis"})

    def stage(self, task: Task, recalled: Any, ctx: MethodContext | None) -> SupervisedStage:
        return SupervisedStage()
