"""Wrong answers recalled from the error memory for a generation task's preference phase."""

from __future__ import annotations

from collections.abc import Sequence

from synlearner.daemon.runner import Context
from synlearner.learner.base import Negative
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
