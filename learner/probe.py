"""The init probe: which start a new task should learn from, checked on held-out data.

Before a task trains, each possible start (fresh with replay, a copy of the nearest past
task's adapter with replay, fresh without replay) trains for the same few steps on part of
the task's train split and is scored on the rest. Negative transfer (a copied start that
does worse there than fresh) falls back to fresh; replay that makes the start worse than
the task alone is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from synlearner.learner.base import InitProbe, LearnPlan, no_progress
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Task

if TYPE_CHECKING:
    from synlearner.learner.classifier import BiEncoderClassifier

log = logging.getLogger("synlearner.learner.classifier")


def probe_starts(clf: BiEncoderClassifier, task: Task, replay: Sequence[ReplayItem],
                 candidate: str | None, plan: LearnPlan, seed: int) -> InitProbe:
    """Train each start for the same steps on part of the train split; score held out.

    Arms: fresh with replay, `candidate`'s copy with replay, fresh without replay (the
    per-task baseline). The copy is kept unless it is worse than fresh (higher held-out
    loss, no better accuracy); then replay is kept unless the chosen arm is worse than
    the baseline in the same sense.
    """
    order = np.random.default_rng(seed).permutation(len(task.train))
    n_held = min(len(task.train) - 1, max(2, round(plan.probe_holdout * len(task.train))))
    held = [task.train[i] for i in order[:n_held]]
    fit = [task.train[i] for i in order[n_held:]]
    arms: dict[str, tuple[str | None, Sequence[ReplayItem]]] = {"fresh": (None, replay)}
    if candidate is not None:
        arms["transferred"] = (candidate, replay)
    if replay:
        arms["alone"] = (None, [])
    scores: dict[str, tuple[float, float]] = {}
    for arm, (start, recalled) in arms.items():
        clf.bank.create("@probe", start, seed)
        clf._train("@probe", clf._items(task, fit, recalled), seed, no_progress,
                    plan.probe_steps, None, 0)
        scores[arm] = clf._score(task, held, "@probe")
        clf.bank.drop("@probe")

    def worse(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[1] > b[1] and a[0] <= b[0]  # (accuracy, loss)

    chosen = "fresh"
    if "transferred" in scores and not worse(scores["transferred"], scores["fresh"]):
        chosen = "transferred"
    keep_replay = "alone" not in scores or not worse(scores[chosen], scores["alone"])
    if not keep_replay:
        chosen = "alone"
    if candidate is not None and chosen != "transferred":
        log.info("task %s: start from %s scores %.3f held out vs %.3f fresh: starting fresh",
                 task.task_id, candidate, scores["transferred"][0], scores["fresh"][0])
    none = (None, None)
    return InitProbe(
        candidate=candidate, steps=plan.probe_steps, holdout=n_held,
        fresh=scores["fresh"][0], fresh_loss=scores["fresh"][1],
        transferred=scores.get("transferred", none)[0],
        transferred_loss=scores.get("transferred", none)[1],
        alone=scores.get("alone", none)[0], alone_loss=scores.get("alone", none)[1],
        chosen=candidate if chosen == "transferred" else None, replay=keep_replay,
    )

