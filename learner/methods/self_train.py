"""Self-training with balanced exploration (B-STaR) for generation tasks: rounds of sampling
answers from the task's adapter, keeping those the reward scores at least tau, and training
on them (`learner/selftrain.py`). It recalls the model's own right answers to related past
tasks (`Memory.successes`) and replays them in every round. Figures: `{"rounds": [...]}`,
one mapping per round (T, tau, balance, pass@1, pass@K, kept, samples, eval accuracy)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from synlearner.learner.base import Prediction, Progress, StageResult
from synlearner.learner.method import Figures, Method, MethodContext, register
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Task

MAX_TASKS = 32  # self-training rounds are exported for the latest tasks only
GAUGES = {  # gauge name -> (key of a round, help)
    "balance_ratio": ("balance", "Balance score of a self-training round's kept answers "
                      "(B-STaR)"),
    "pass_at_1_ratio": ("pass_at_1", "Share of a self-training round's sampled answers that "
                        "are correct"),
    "pass_at_k_ratio": ("pass_at_k", "Share of a self-training round's prompts with a correct "
                        "answer sampled"),
    "temperature": ("temperature", "Sampling temperature a self-training round chose"),
    "tau": ("tau", "Reward threshold a self-training round chose"),
    "eval_accuracy_ratio": ("eval_accuracy", "Eval exact match after a self-training round"),
}


@dataclass(frozen=True)
class SelfTrainStage:
    successes: Sequence[ReplayItem]
    name: str = "self_train"

    def train(self, learner: Any, task: Task, key: str, replay: Sequence[ReplayItem],
              steps: int, seed: int, progress: Progress,
              earlier: Sequence[Prediction]) -> StageResult:
        from synlearner.learner.selftrain import SelfTrainer  # torch: only when it trains

        trainer = SelfTrainer(learner, learner.settings.self_train, learner.reward_of(task))
        rounds = trainer.run(task, key, replay, seed, progress, self.successes)
        return StageResult(steps=sum(r.steps for r in rounds),
                           loss=rounds[-1].loss if rounds else float("nan"),
                           figures={"rounds": [r.as_dict() for r in rounds]},
                           attempts=trainer.attempts)


@register
class SelfTrain(Method):
    name = "self_train"
    kinds = frozenset({"generation"})
    config_key = "learner.generation.self_train"
    stored_as = "rounds"

    def restored(self, stored: Any) -> Figures:
        return {"rounds": list(stored)}

    def recall(self, task: Task, ctx: MethodContext) -> list[ReplayItem]:
        n = ctx.section(self.config_key).past_successes
        return ctx.memory.successes([e.input for e in task.train], n, task.kind,
                                    exclude_task=task.task_id)

    def stage(self, task: Task, recalled: Any, ctx: MethodContext | None) -> SelfTrainStage:
        return SelfTrainStage(tuple(recalled or ()))

    def metrics(self, registry: Any) -> Callable[[str, Figures], None]:
        """Per round of a task's self-training: the balance score, pass@1, pass@K, T and tau
        (the latest `MAX_TASKS` tasks keep their series), and the answers sampled."""
        gauges = {name: Gauge(f"synlearner_selftrain_{name}", help_, ["task", "round"],
                              registry=registry) for name, (_, help_) in GAUGES.items()}
        samples = Counter("synlearner_selftrain_samples_total", "Answers sampled by "
                          "self-training, the (T, tau) search's included", registry=registry)
        tasks: list[tuple[str, list[Mapping[str, float]]]] = []

        def observe(column: str, figures: Figures) -> None:
            rounds = list(figures.get("rounds", ()))
            samples.inc(sum(r["samples"] for r in rounds))
            tasks[:] = [*(t for t in tasks if t[0] != column), (column, rounds)][-MAX_TASKS:]
            for gauge in gauges.values():
                gauge.clear()
            for task, done in tasks:
                for r in done:
                    for name, (key, _) in GAUGES.items():
                        gauges[name].labels(task=task, round=str(int(r["round"]))).set(r[key])

        return observe

    def report(self, tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        trained = [t for t in tasks if t["extras"].get(self.name, {}).get("rounds")]
        if not trained:
            return []
        lines = ["", "self-training rounds (B-STaR: T and tau chosen per round)",
                 f"{'task':<24} {'round':>5} {'T':>5} {'tau':>5} {'balance':>7} {'pass@1':>6} "
                 f"{'pass@K':>6} {'kept':>5} {'past':>4} {'samples':>7} {'grid':>7} {'eval':>6}"]
        for t in trained:
            for r in t["extras"][self.name]["rounds"]:
                lines.append(
                    f"{t['task'][:24]:<24} {int(r['round']):>5} {r['temperature']:>5.2f} "
                    f"{r['tau']:>5.2f} {r['balance']:>7.3f} {r['pass_at_1']:>6.3f} "
                    f"{r['pass_at_k']:>6.3f} {int(r['kept']):>5} "
                    f"{int(r.get('past_successes', 0)):>4} {int(r['samples']):>7} "
                    f"{int(r['grid_samples']):>7} {r['eval_accuracy']:>6.3f}")
        return lines
