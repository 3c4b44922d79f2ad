"""A small numpy learner that keeps the `Learner` contract: nearest label centroid per task,
"adapters" saved as JSON, merging by averaging centroids."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synlearner.daemon.attempts import Attempts
from synlearner.daemon.config import Config, load_config
from synlearner.daemon.loop import Daemon
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.state import State
from synlearner.learner.base import (
    InitProbe,
    LearnOutcome,
    LearnPlan,
    Prediction,
    Progress,
    no_progress,
)
from synlearner.memory import ExperienceMemory, HashingEmbedder, ReplayItem
from synlearner.stream import InMemoryResultSink, InMemorySource, Task

EMB = HashingEmbedder(128)


class CentroidLearner:
    kind = "classification"

    def __init__(self) -> None:
        self.adapters: dict[str, dict[str, list[float]]] = {}
        self.trained: list[str] = []
        self.plans: list[LearnPlan] = []
        self.merges: list[tuple[tuple[str, ...], str, str]] = []
        self.stop_after: str | None = None
        self.confused: set[str] = set()  # tasks whose adapter comes out with labels swapped
        self.evaluations: list[tuple[str, str | None]] = []

    @property
    def embedder(self) -> HashingEmbedder:
        return EMB

    def _fit(self, task: Task, replay: Sequence[ReplayItem]) -> dict[str, list[float]]:
        cents = {}
        for label in task.labels:
            texts = [e.input for e in task.train if e.output == label]
            texts += [r.record.input for r in replay if r.record.target == label]
            cents[label] = EMB.embed(texts).mean(0).tolist()
        return cents

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]:
        if adapter is None:
            return [task.labels[0]] * len(texts)
        cents = self.adapters[adapter]
        vecs = EMB.embed(list(texts))

        def score(v: np.ndarray, lab: str) -> float:  # a label it never saw scores lowest
            return float(v @ np.array(cents[lab])) if lab in cents else -np.inf

        return [max(task.labels, key=lambda lab: score(v, lab)) for v in vecs]

    def label_scores(self, task: Task, texts: Sequence[str],
                     adapter: str | None) -> list[dict[str, float]]:
        """A softmax over the centroid scores (uniform with no adapter)."""
        if adapter is None:
            return [dict.fromkeys(task.labels, 1 / len(task.labels)) for _ in texts]
        cents = self.adapters[adapter]
        out = []
        for v in EMB.embed(list(texts)):
            s = np.array([float(v @ np.array(cents[lab])) if lab in cents else -50.0
                          for lab in task.labels]) * 10
            p = np.exp(s - s.max())
            out.append(dict(zip(task.labels, (p / p.sum()).tolist(), strict=True)))
        return out

    def evaluate(self, task: Task, adapter: str | None) -> float:
        self.evaluations.append((task.task_id, adapter))
        preds = self.predict(task, [e.input for e in task.eval], adapter)
        return float(np.mean([p == e.output for p, e in zip(preds, task.eval, strict=True)]))

    def learn(self, task: Task, replay: Sequence[ReplayItem], plan: LearnPlan,
              progress: Progress = no_progress) -> LearnOutcome:
        self.plans.append(plan)
        zero = self.evaluate(task, None)
        progress("train", 1, 2, 0.5)
        if self.stop_after == task.task_id:
            progress("train", 2, 2, 0.4)
        init_from = plan.init_from if plan.init_from in self.adapters else None
        fitted = self._fit(task, replay)
        if task.task_id in self.confused:
            labels = list(fitted)
            fitted = dict(zip(labels, [fitted[lab] for lab in reversed(labels)], strict=True))
        if plan.resume and plan.adapter in self.adapters:  # keep other tasks' labels too
            fitted = {**self.adapters[plan.adapter], **fitted}
        self.adapters[plan.adapter] = fitted
        self.trained.append(task.task_id)
        preds = []
        for split, exs in (("train", task.train), ("eval", task.eval)):
            for e, p in zip(exs, self.predict(task, [x.input for x in exs], plan.adapter),
                            strict=True):
                preds.append(Prediction(split, e.input, e.output, p, p == e.output, 0.0))
        probe = None
        if init_from is not None and plan.probe_steps > 0:
            probe = InitProbe(init_from, plan.probe_steps, 2, 0.5, 0.7, 1.0, 0.2, 0.5, 0.7,
                              init_from, True)
        return LearnOutcome(zero, zero, self.evaluate(task, plan.adapter), init_from, 1,
                            len(task.train), len(replay), 0.1, preds, probe=probe)

    def merge(self, sources: Sequence[str], name: str, method: str) -> None:
        self.merges.append((tuple(sources), name, method))
        labels = {lab for s in sources for lab in self.adapters[s]}
        self.adapters[name] = {
            lab: np.mean([self.adapters[s][lab] for s in sources if lab in self.adapters[s]],
                         axis=0).tolist() for lab in labels}

    def check(self, task: Task) -> None:
        if task.instruction == "unlearnable":
            raise ValueError("instruction: this learner cannot take it")

    def has_adapter(self, task_id: str) -> bool:
        return task_id in self.adapters

    def drop_adapter(self, task_id: str) -> None:
        self.adapters.pop(task_id, None)

    def save_adapter(self, task_id: str, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "centroids.json").write_text(json.dumps(self.adapters[task_id]))

    def load_adapter(self, task_id: str, path: Path) -> None:
        self.adapters[task_id] = json.loads((path / "centroids.json").read_text())


def unit_config(state_dir: Path, **overrides: Any) -> Config:
    """The production defaults, with an in-memory stream that drains, and `overrides`
    (dotted keys) for what a test is about."""
    base = {"state_dir": str(state_dir), "stream.kind": "memory", "stream.poll_timeout_s": 0.01,
            "stream.backoff_max_s": 0.01, "daemon.drain": True, "daemon.http.enabled": False}
    return load_config(None, {**base, **overrides}, env={})


def unit_daemon(cfg: Config, source: InMemorySource, learner: CentroidLearner,
                memory_dir: Path | None = None, kinds: Sequence[str] = ("classification",)) -> Daemon:
    """A daemon on `cfg` with the numpy learner for `kinds` and a real memory on the hashing
    embedder."""
    memory = ExperienceMemory(memory_dir or cfg.state_dir / "memory", EMB, cfg.memory)
    return Daemon(cfg, source, InMemoryResultSink(), memory, dict.fromkeys(kinds, learner),
                  State.load(cfg.state_dir), Metrics(), Attempts(cfg.state_dir / "attempts"))
