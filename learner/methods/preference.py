"""Preference pairs scored by the task's reward, trained with DPO (RLearner): candidates
sampled from the task's adapter, the wrong answers recalled from the error memory (the
model's own to the same input first, then those to the nearest inputs) and the wrong answers
the stages before it sampled are the rejected answers (`learner/dpo.py`). Figures: pairs by
where the rejected answer came from, pairs skipped for a small reward gap, DPO's steps, loss
and reward accuracy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from synlearner.learner.base import Negative, Prediction, Progress, StageResult
from synlearner.learner.method import Figures, Method, MethodContext, register
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Task


@dataclass(frozen=True)
class PreferenceStage:
    negatives: Mapping[str, Sequence[Negative]]
    name: str = "preference"

    def train(self, learner: Any, task: Task, key: str, replay: Sequence[ReplayItem],
              steps: int, seed: int, progress: Progress,
              earlier: Sequence[Prediction]) -> StageResult:
        from synlearner.learner.dpo import run_preference  # torch: only when it trains

        figures, wrong = run_preference(learner, task, key, learner.reward_of(task),
                                        self.negatives, earlier, seed, progress)
        return StageResult(steps=int(figures["steps"]), loss=figures.get("loss", float("nan")),
                           figures=figures, attempts=wrong)


@register
class Preference(Method):
    name = "preference"
    kinds = frozenset({"generation"})
    config_key = "learner.generation.preference"
    stored_as = "preference"

    def recall(self, task: Task, ctx: MethodContext) -> dict[str, list[Negative]]:
        """Wrong answers the error memory holds for each train input: the model's own to the
        same input (`own`), then those to the nearest inputs (`neighbour`)."""
        texts = [e.input for e in task.train]
        k = ctx.section(self.config_key).neighbours
        out: dict[str, list[Negative]] = {}
        for text, hits in zip(texts, ctx.memory.negatives(texts, k), strict=True):
            if hits:
                out[text] = [Negative(h.record.prediction,
                                      "own" if h.record.input == text else "neighbour", h.score)
                             for h in hits]
        return out

    def stage(self, task: Task, recalled: Any, ctx: MethodContext | None) -> PreferenceStage:
        return PreferenceStage(recalled or {})

    def metrics(self, registry: Any) -> Callable[[str, Figures], None]:
        """Its pairs by the rejected answer's source, the skipped ones, and the DPO reward
        accuracy of the last task."""
        pairs = Counter("synlearner_preference_pairs_total", "Preference pairs trained on, by "
                        "where the rejected answer came from", ["source"], registry=registry)
        skipped = Counter("synlearner_preference_skipped_total", "Rejected answers skipped for "
                          "a reward gap under min_score_gap", registry=registry)
        reward_accuracy = Gauge(
            "synlearner_preference_reward_accuracy_ratio", "Of the last preference pairs, the "
            "share whose implicit reward ranks the chosen answer first after DPO",
            registry=registry)

        def observe(column: str, figures: Figures) -> None:
            for key, value in figures.items():
                if key.startswith("pairs_"):
                    pairs.labels(source=key.removeprefix("pairs_")).inc(value)
            skipped.inc(figures.get("skipped_gap", 0.0))
            if "reward_accuracy" in figures:
                reward_accuracy.set(figures["reward_accuracy"])

        return observe

    def report(self, tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        preferring = [t for t in tasks if t["extras"].get(self.name)]
        if not preferring:
            return []
        lines = ["", "preference learning (DPO; rejected answers by source)",
                 f"{'task':<24} {'pairs':>5} {'own':>4} {'neigh':>5} {'cand':>4} {'tmpl':>4} "
                 f"{'skip':>4} {'steps':>5} {'loss':>7} {'rew.acc':>7}"]
        for t in preferring:
            p = t["extras"][self.name]
            lines.append(
                f"{t['task'][:24]:<24} {int(p['pairs']):>5} {int(p['pairs_own']):>4} "
                f"{int(p['pairs_neighbour']):>5} {int(p['pairs_candidate']):>4} "
                f"{int(p['pairs_template']):>4} {int(p['skipped_gap']):>4} {int(p['steps']):>5} "
                f"{p.get('loss', float('nan')):>7.4f} {p.get('reward_accuracy', float('nan')):>7.3f}")
        return lines
