"""What a generation task recalls of the model's own past answers: wrong ones for its
preference phase (hard negatives), right ones for its self-training rounds."""

from __future__ import annotations

from collections.abc import Sequence

from synlearner.daemon.runner import Context
from synlearner.learner.base import Negative
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Task


def phases_of(task: Task, ctx: Context) -> tuple[str, ...]:
    return task.phases or tuple(ctx.cfg.learner.generation.phases)


def recall_negatives(ctx: Context, texts: Sequence[str]) -> dict[str, list[Negative]]:
    """Wrong answers the error memory holds for each train input: the model's own to the
    same input (`own`), then those to the nearest inputs (`neighbour`)."""
    k = ctx.cfg.learner.generation.preference.neighbours
    out: dict[str, list[Negative]] = {}
    for text, hits in zip(texts, ctx.memory.negatives(texts, k), strict=True):
        if hits:
            out[text] = [Negative(h.record.prediction,
                                  "own" if h.record.input == text else "neighbour", h.score)
                         for h in hits]
    return out


def recall_successes(ctx: Context, task: Task, texts: Sequence[str]) -> list[ReplayItem]:
    """Right answers the model gave itself on related past tasks (`Memory.successes`), as
    many as `learner.generation.self_train.past_successes`."""
    n = ctx.cfg.learner.generation.self_train.past_successes
    return ctx.memory.successes(texts, n, task.kind, exclude_task=task.task_id)
