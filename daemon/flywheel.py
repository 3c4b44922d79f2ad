"""The data flywheel: synthetic training data for a classification task that asks for it.

A classification task with `synthesize: {"count": N, "from": <synthesis task> | "nearest"}`
gets N texts written by the synthesis task's adapter (`from`, or the nearest past synthesis
task with the same labels), on a label-balanced plan of its labels: few-shot texts from its
own train split, attribute pools, descriptions and instruction from the synthesis task.
The current classifier filters them: the adapter the task starts from (its nearest past
classification task's), else the synthesis task's judge, else the base encoder zero-shot.
A text is kept when that classifier gives the intended label a probability of at least
`learner.synthesize.min_confidence`, it passes the synthesis quality rules (enough words,
no copy of its few-shot texts) and its cosine to every real train text and every text
kept before it is under `max_similarity` (no near copies). The task then trains on its
real examples plus the kept ones; in the memory the kept ones are split `synthetic`
(replayed like train examples, never evaluated on). The figures (generated, kept, the
label agreement of the kept ones with the trained adapter) are the entry's `synthesis`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from synlearner.daemon.runner import Context, TaskRun
from synlearner.daemon.strategies import task_info
from synlearner.learner import synthesis as S
from synlearner.learner.base import Judge
from synlearner.stream.schema import Example, Task

log = logging.getLogger("synlearner.daemon")
NEAREST = "nearest"


class Writer(Protocol):  # the synthesis learner, as the flywheel uses it
    def write(self, source: Task, adapter: str | None, labels: Sequence[str],
              examples: Sequence[tuple[str, str]], n: int, temperature: float,
              seed: int) -> list[tuple[S.PlanItem, str]]: ...

    def judge_of(self, task: Task) -> Judge: ...

    def has_adapter(self, task_id: str) -> bool: ...


def source_of(task: Task, ctx: Context) -> str | None:
    """The synthesis task that writes for `task`: the one it names, or the nearest past
    synthesis task with its labels (None: there is none)."""
    named = str((task.synthesize or {}).get("from", NEAREST))
    if named != NEAREST:
        return named
    for task_id, _ in ctx.memory.similar_tasks(task_info(task), [e.input for e in task.train],
                                               ctx.cfg.learner.similar_tasks * 4,
                                               exclude=task.task_id):
        info = ctx.memory.task_info(task_id)
        if info is not None and info.kind == "synthesis" and set(info.labels) == set(task.labels):
            return task_id
    return None


class Synthesize:
    """Write, filter and add the synthetic examples a classification task asks for."""

    name = "synthesize"

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, run: TaskRun, ctx: Context) -> None:
        task = run.task
        if task.kind != "classification" or not task.synthesize:
            return
        cfg = ctx.cfg.learner.synthesize
        source = source_of(task, ctx) if "synthesis" in ctx.learners else None
        if source is None or ctx.state.latest(source) is None:
            log.warning("task %s: asks for synthetic data, but no learned synthesis task has its "
                        "labels (or no generation model is configured); it learns from its own "
                        "examples", task.task_id)
            run.flywheel = {"generated": 0.0, "kept": 0.0}
            return
        writer: Writer = ctx.learners["synthesis"]  # type: ignore[assignment]
        t0 = time.perf_counter()
        written = writer.write(ctx.state.load_task(source), ctx.answer_key(source), task.labels,
                               [(e.input, e.output) for e in task.train],
                               int(task.synthesize["count"]), temperature=cfg.temperature,
                               seed=ctx.cfg.learner.seed)
        judge = run.init_from or writer.judge_of(ctx.state.load_task(source)).adapter
        classifier = ctx.learners["classification"]
        use = judge if judge and classifier.has_adapter(judge) else None
        texts = [text for _, text in written]
        scores = classifier.label_scores(task, [t or " " for t in texts], use)  # type: ignore[attr-defined]
        real = [e.input for e in task.train]
        vectors = classifier.embedder.embed([*real, *(t or " " for t in texts)])
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        kept_vectors = list(vectors[: len(real)])
        min_words = ctx.cfg.learner.generation.synthesis.min_words
        kept: list[Example] = []
        seen = set(real)  # a copy of a real text is never kept, whatever max_similarity says
        confident = 0
        for (item, text), score, vector in zip(written, scores, vectors[len(real):], strict=True):
            if score[item.label] < cfg.min_confidence or max(score, key=score.__getitem__) != item.label:
                continue
            confident += 1
            if S.quality(text, item.shots, min_words) == 0 or text.strip() in seen:
                continue
            if kept_vectors and float(np.max(np.stack(kept_vectors) @ vector)) >= cfg.max_similarity:
                continue
            kept.append(Example(text.strip(), item.label))
            kept_vectors.append(vector)
            seen.add(text.strip())
        run.synthetic = kept
        run.flywheel = {"generated": float(len(written)), "confident": float(confident),
                        "kept": float(len(kept)), "seconds": time.perf_counter() - t0}
        log.info("task %s: %d synthetic texts from %s (filter: %s), %d of the intended label, "
                 "%d kept", task.task_id, len(written), source, use or "zero-shot", confident,
                 len(kept))


def kept_agreement(run: TaskRun) -> float | None:
    """The share of the kept synthetic examples the trained adapter labels as intended."""
    texts = {e.input for e in run.synthetic}
    got = [p.correct for p in run.learned.predictions if p.split == "train" and p.input in texts]
    return float(np.mean(got)) if got else None
