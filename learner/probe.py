"""The init probe: which start a new task should learn from, checked on held-out data.

Before a task trains, each possible start (fresh with replay, a copy of the nearest past
task's adapter with replay, fresh without replay) trains for the same few steps on part of
the task's train split and is scored on the rest (at most `probe_max_holdout` examples);
the task's training goes on from the winning arm. Negative transfer (a copied start that
does worse there than fresh) falls back to fresh; replay that makes the start worse than
the task alone is dropped. The losing arms' steps are the probe's cost, kept within
`probe_budget` of the task's steps: short tasks get fewer steps per arm (at least
`MIN_PROBE_STEPS`), then no replay check, then no trained probe.

A task too short for a trained probe still gets its start checked, at no training cost
(`check_start`): the copy before any training against the base model (what a fresh adapter
is before its first step), on the task's own train examples. A copy that answers them worse
falls back to fresh. Its replay goes unchecked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from synlearner.learner.base import InitProbe, LearnPlan, no_progress
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Task

if TYPE_CHECKING:
    from synlearner.learner.classifier import BiEncoderClassifier

log = logging.getLogger("synlearner.learner.classifier")


Arms = dict[str, tuple[str | None, Sequence[ReplayItem]]]  # arm -> (start, replay)


def probe_arms(candidate: str | None, replay: Sequence[ReplayItem], steps: int) -> Arms:
    """The starts to compare: fresh with replay, `candidate`'s copy with replay, fresh
    without replay (only where there is a candidate or a replay to check)."""
    arms: Arms = {"fresh": (None, replay)}
    if candidate is not None:
        arms["transferred"] = (candidate, replay)
    if replay:
        arms["alone"] = (None, [])
    return arms if len(arms) > 1 and steps > 0 else {}


def affordable(candidate: str | None, replay: Sequence[ReplayItem], plan: LearnPlan,
               total: int) -> tuple[int, bool]:
    """Steps per arm the probe can afford within `plan.probe_budget` of the task's `total`
    steps (the winner's steps are the task's own; the other arms' are the cost), and whether
    the replay check still fits. (0, _): no trained probe. A user's `probe_steps` under
    `MIN_PROBE_STEPS` is taken as the least."""
    for check_replay in (True, False):
        arms = probe_arms(candidate, replay if check_replay else [], plan.probe_steps)
        if not arms:
            continue
        steps = min(plan.probe_steps, int(plan.probe_budget * total / (len(arms) - 1)))
        if steps >= min(MIN_PROBE_STEPS, plan.probe_steps):
            return steps, check_replay
    return 0, False


MIN_PROBE_STEPS = 4  # fewer per arm: the start is checked before training (`check_start`)


def worse(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """`a` (accuracy, loss) did worse than `b` on the same held-out examples: a higher
    loss and no better accuracy."""
    return a[1] > b[1] and a[0] <= b[0]


class Winner(NamedTuple):
    adapter: str  # the arm's adapter, trained for the probe's steps
    seconds: float  # its training time
    loss: float  # its training loss (moving average)


def probe_starts(clf: BiEncoderClassifier, task: Task, replay: Sequence[ReplayItem],
                 candidate: str | None, steps: int, check_replay: bool, plan: LearnPlan,
                 seed: int) -> tuple[InitProbe, Winner]:
    """Train each start for the same steps on part of the train split; score held out.

    Arms: fresh with replay, `candidate`'s copy with replay, fresh without replay (the
    per-task baseline). The copy is kept unless it is worse than fresh (higher held-out
    loss, no better accuracy); then replay is kept unless the chosen arm is worse than
    the baseline in the same sense. Returns the verdict and the winning arm, whose adapter
    the task's training goes on from (its steps are not spent twice; the caller drops it).
    """
    order = np.random.default_rng(seed).permutation(len(task.train))
    n_held = min(len(task.train) - 1, max(2, round(plan.probe_holdout * len(task.train))),
                 plan.probe_max_holdout)
    held = [task.train[i] for i in order[:n_held]]
    fit = [task.train[i] for i in order[n_held:]]
    arms = probe_arms(candidate, replay if check_replay else [], steps)
    if not check_replay and replay:  # replay goes with every arm, unchecked
        arms = {arm: (start, replay) for arm, (start, _) in arms.items()}
    scores: dict[str, tuple[float, float]] = {}
    winners: dict[str, Winner] = {}
    for arm, (start, recalled) in arms.items():
        t = time.perf_counter()
        clf.bank.create(f"@probe-{arm}", start, seed)
        loss = clf._train(f"@probe-{arm}", clf._items(task, fit, recalled), seed, no_progress,
                          steps, None, 0)[1]
        winners[arm] = Winner(f"@probe-{arm}", time.perf_counter() - t, loss)
        scores[arm] = clf._score(task, held, f"@probe-{arm}")

    chosen = "fresh"
    if "transferred" in scores and not worse(scores["transferred"], scores["fresh"]):
        chosen = "transferred"
    keep_replay = "alone" not in scores or not worse(scores[chosen], scores["alone"])
    if not keep_replay:
        chosen = "alone"
    for arm in arms:
        if arm != chosen:
            clf.bank.drop(f"@probe-{arm}")
    if candidate is not None and chosen != "transferred":
        log.info("task %s: start from %s scores %.3f held out vs %.3f fresh: starting fresh",
                 task.task_id, candidate, scores["transferred"][0], scores["fresh"][0])
    none = (None, None)
    verdict = InitProbe(
        candidate=candidate, steps=steps, holdout=n_held,
        fresh=scores["fresh"][0], fresh_loss=scores["fresh"][1],
        transferred=scores.get("transferred", none)[0],
        transferred_loss=scores.get("transferred", none)[1],
        alone=scores.get("alone", none)[0], alone_loss=scores.get("alone", none)[1],
        chosen=candidate if chosen == "transferred" else None, replay=keep_replay,
    )
    return verdict, winners[chosen]


def check_start(clf: BiEncoderClassifier, task: Task, candidate: str, plan: LearnPlan,
                seed: int) -> tuple[InitProbe, float | None]:
    """The start of a task too short for a trained probe: `candidate`'s adapter as it is
    against the base model (a fresh adapter before its first step), on at most
    `probe_max_holdout` of the task's train examples. Neither has trained on them, so all
    are held out. The copy is kept unless it is worse (`worse`); replay is not checked.
    Also returns the copy's eval accuracy when it is kept (R[i-1][i], from the same pass)."""
    order = np.random.default_rng(seed).permutation(len(task.train))
    held = [task.train[i] for i in order[: plan.probe_max_holdout]]
    fresh = clf._score(task, held, None)  # the base model's vectors come from the cache
    copy, on_eval = clf._scores(task, [held, task.eval], candidate)
    keep = not worse(copy, fresh)
    if not keep:
        log.info("task %s: %s's adapter scores %.3f on its train examples vs %.3f for the base "
                 "model: starting fresh", task.task_id, candidate, copy[0], fresh[0])
    return InitProbe(
        candidate=candidate, steps=0, holdout=len(held), fresh=fresh[0], fresh_loss=fresh[1],
        transferred=copy[0], transferred_loss=copy[1], alone=None, alone_loss=None,
        chosen=candidate if keep else None, replay=True,
    ), on_eval[0] if keep else None
