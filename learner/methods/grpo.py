"""Reward-optimised synthesis (SynLearner): GRPO on a synthesis task's plan of requests with
the hierarchical reward, a diversity term among it (`learner/grpo.py`). Figures: texts
sampled, the judge's agreement with their intended labels, the mean reward and its mean in
the first and second half of the steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from synlearner.learner.base import Prediction, Progress, StageResult
from synlearner.learner.method import Figures, Method, MethodContext, register
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Task

GAUGES = {  # gauge name -> (figure, help)
    "reward_ratio": ("reward_mean", "Mean hierarchical reward of the last synthesis task's "
                     "GRPO samples"),
    "sample_agreement_ratio": ("sample_agreement", "Share of the last synthesis task's GRPO "
                               "samples the judge gave their intended label"),
}


@dataclass(frozen=True)
class GrpoStage:
    name: str = "grpo"

    def train(self, learner: Any, task: Task, key: str, replay: Sequence[ReplayItem],
              steps: int, seed: int, progress: Progress,
              earlier: Sequence[Prediction]) -> StageResult:
        from synlearner.learner.grpo import train_grpo  # torch: only when it trains
        from synlearner.learner.synth_learner import spec_of

        done = train_grpo(learner, task, spec_of(task), key, seed, progress)
        return StageResult(steps=done.steps, loss=done.loss, figures=done.figures,
                           attempts=done.attempts)


@register
class Grpo(Method):
    name = "grpo"
    kinds = frozenset({"synthesis"})

    def stage(self, task: Task, recalled: Any, ctx: MethodContext | None) -> GrpoStage:
        return GrpoStage()

    def metrics(self, registry: Any) -> Callable[[str, Figures], None]:
        """The texts GRPO sampled, and the last task's mean reward and sample agreement."""
        samples = Counter("synlearner_synthesis_samples_total", "Texts sampled by synthesis "
                          "tasks' reward optimisation (GRPO)", registry=registry)
        gauges = {name: Gauge(f"synlearner_synthesis_{name}", help_, registry=registry)
                  for name, (_, help_) in GAUGES.items()}

        def observe(column: str, figures: Figures) -> None:
            samples.inc(figures.get("samples", 0.0))
            for name, (key, _) in GAUGES.items():
                if key in figures:
                    gauges[name].set(figures[key])

        return observe

    def report(self, tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        trained = [t for t in tasks if t["extras"].get(self.name)]
        if not trained:
            return []
        lines = ["", "reward-optimised synthesis (GRPO with the hierarchical reward)",
                 f"{'task':<24} {'samples':>7} {'s-agree':>7} {'reward':>6} {'1st half':>8} "
                 f"{'2nd half':>8}"]
        for t in trained:
            g = t["extras"][self.name]
            lines.append(f"{t['task'][:24]:<24} {int(g.get('samples', 0)):>7} " + " ".join(
                f"{g[k]:>{w}.3f}" if k in g else f"{'-':>{w}}" for k, w in (
                    ("sample_agreement", 7), ("reward_mean", 6), ("reward_first_half", 8),
                    ("reward_second_half", 8))))
        return lines
