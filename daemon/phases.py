"""The phases of learning one task, in the order the runner runs them (`PHASES`), and the
commit that ends them.

recall → synthesize → init → train → promote → persist → remember → consolidate → evaluate
→ commit

The task-agnostic part (init, consolidate and the agnostic row of evaluate) runs on the
events `learner.consolidate_every` names; otherwise `consolidate_idle` does it when the
stream is idle, since its cost grows with every task learned.

Each phase reads what the ones before it left in the `TaskRun` and adds its own part. A
phase that does not apply to a daemon's strategy or config (`applies`) is left out when
the daemon is built.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synlearner.daemon.flywheel import Synthesize, kept_agreement
from synlearner.daemon.runner import Context, Phase, TaskRun
from synlearner.daemon.state import TaskEntry
from synlearner.daemon.strategies import task_info
from synlearner.learner.base import Judge
from synlearner.memory.base import Record
from synlearner.stream.schema import Example, Task, TaskResult

log = logging.getLogger("synlearner.daemon")
ATTEMPT = "self_train"  # the split of answers the model sampled itself


def separate_agnostic(ctx: Context) -> bool:
    """Only per-task adapters answer differently with and without the task id."""
    return ctx.cfg.learner.task_agnostic and ctx.strategy.per_task


class Recall:
    """Drop leftovers of an interrupted attempt; recall replay and the nearest past task."""

    name = "recall"

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, run: TaskRun, ctx: Context) -> None:
        task, lc = run.task, ctx.cfg.learner
        ctx.memory.forget_task(run.pending)
        texts = [e.input for e in task.train]
        if lc.init == "nearest" and ctx.strategy.per_task:
            t = time.perf_counter()
            similar = ctx.memory.similar_tasks(task_info(task), texts, lc.similar_tasks,
                                               exclude=task.task_id)
            ctx.metrics.memory_search.labels(operation="similar_tasks").observe(
                time.perf_counter() - t)
            run.init_from = _nearest(run, ctx, similar)
        t = time.perf_counter()
        items = ctx.memory.recall(task.task_id, texts, seed=lc.seed, task_kind=task.kind)
        ctx.metrics.memory_search.labels(operation="replay").observe(time.perf_counter() - t)
        run.replay = items
        for method in run.methods:  # what each of its learning methods needs from memory
            t = time.perf_counter()
            run.recalled[method.name] = method.recall(task, ctx)
            if run.recalled[method.name] is not None:
                ctx.metrics.memory_search.labels(operation=method.name).observe(
                    time.perf_counter() - t)


def _judge(task: Task, ctx: Context) -> Judge | None:
    """A synthesis task's judge: the adapter that answers for the classification task it
    names (checked when the task was accepted); None: zero-shot."""
    tid = (task.synthesis or {}).get("judge") if task.kind == "synthesis" else None
    if tid is None:
        return None
    seen = ctx.state.load_task(tid)
    return Judge.of(tid, seen.instruction, seen.labels, ctx.answer_key(tid))


def _nearest(run: TaskRun, ctx: Context, similar: list[tuple[str, float]]) -> str | None:
    for task_id, similarity in similar:
        info = ctx.memory.task_info(task_id)
        if (similarity >= ctx.cfg.learner.min_init_similarity and info is not None
                and info.kind == run.task.kind and run.learner.has_adapter(task_id)):
            log.info("task %s: initialising from %s (similarity %.3f)", run.task.task_id,
                     task_id, similarity)
            return task_id
    return None


class Init:
    """The task-agnostic score of the new task before training on it (R[i-1][i])."""

    name = "init"

    def applies(self, ctx: Context) -> bool:
        return separate_agnostic(ctx)

    def run(self, run: TaskRun, ctx: Context) -> None:
        if run.agnostic_due:
            run.agnostic_before = ctx.agnostic.score(run.task)


class Train:
    """Train the strategy's adapter on the task plus replay (the learner probes the start)."""

    name = "train"

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, run: TaskRun, ctx: Context) -> None:
        stages = [m.stage(run.task, run.recalled.get(m.name), ctx) for m in run.methods]
        run.plan = dataclasses.replace(ctx.strategy.plan(run, ctx), judge=_judge(run.task, ctx),
                                       stages=tuple(s for s in stages if s is not None))
        key = run.plan.adapter
        ctx.scores = {k: v for k, v in ctx.scores.items() if k[1] != key}  # it changes now
        task = run.task
        if run.synthetic:  # the flywheel's kept examples (the memory keeps them apart)
            task = dataclasses.replace(task, train=(*task.train, *run.synthetic))
        run.outcome = run.learner.learn(task, run.replay, run.plan, ctx.progress(task.task_id))
        ctx.metrics.train_examples.inc(run.outcome.train_examples)
        ctx.metrics.replay_examples.inc(run.outcome.replay_examples)


class Promote:
    """Backward transfer for per-task adapters.

    The new adapter started from `init_from`'s and trained with replay of the past, so it
    may now answer earlier tasks of its lineage better than their own adapters. Each task
    answered by an adapter of the lineage is scored on its own train data with both; the
    new adapter takes over where it is strictly better there. The check reads a seeded
    sample of `learner.promote_examples` train examples, the same each time for a task, and
    the current adapter's score on it is cached while that adapter is unchanged.
    """

    name = "promote"

    def applies(self, ctx: Context) -> bool:
        return ctx.cfg.learner.promote and ctx.strategy.per_task

    def run(self, run: TaskRun, ctx: Context) -> None:
        task, outcome = run.task, run.learned
        if outcome.init_from is None:
            return
        lineage: set[str] = set()
        source: str | None = outcome.init_from
        while source is not None and source not in lineage:
            lineage.add(source)
            entry = ctx.state.latest(source)
            source = entry.init_from if entry else None
        for task_id in ctx.state.task_ids():
            current = ctx.answer_key(task_id)
            if task_id == task.task_id or current not in lineage:
                continue
            seen = ctx.state.load_task(task_id)
            if seen.kind != task.kind:
                continue
            ctx.beat("promote", task_id)
            on_train = dataclasses.replace(seen, eval=tuple(_sample(seen.train, ctx)))
            mine = run.learner.evaluate(on_train, task.task_id)
            if (f"{task_id}@train", current) not in ctx.scores:
                ctx.scores[(f"{task_id}@train", current)] = run.learner.evaluate(on_train,
                                                                                 current)
            theirs = ctx.scores[(f"{task_id}@train", current)]
            if mine > theirs:
                log.info("task %s: now answered by %s (train accuracy %.3f vs %.3f)", task_id,
                         task.task_id, mine, theirs)
                run.promoted[task_id] = task.task_id


def _sample(examples: Sequence[Example], ctx: Context) -> list[Example]:
    n = ctx.cfg.learner.promote_examples
    if len(examples) <= n:
        return list(examples)
    keep = np.random.default_rng(ctx.cfg.learner.seed).choice(len(examples), n, replace=False)
    return [examples[i] for i in sorted(keep)]


class Persist:
    """The trained adapter and the task's definition, in this event's own paths."""

    name = "persist"
    stores = True  # a failure here is the storage's, never the message's

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, run: TaskRun, ctx: Context) -> None:
        key = ctx.strategy.adapter_key(run.task.task_id)
        run.adapter_dir = ctx.state.adapter_dir(key, run.event)
        ctx.retry("persist", ctx.state.will_write,  # holds on a locked or full disk
                  [str(run.adapter_dir.relative_to(ctx.state.root)),
                   ctx.state.task_file(run.task.task_id, run.version)])
        run.learner.save_adapter(key, run.adapter_dir)
        run.task_file = ctx.state.save_task(run.task, run.version)


class Remember:
    """Every example seen and every mistake made, under the pending id until the commit.
    Answers the model sampled itself (split `self_train`) are kept as they were judged: a
    wrong one as an error only, a right one as a success (replayed by later self-training
    rounds, never as a train example)."""

    name = "remember"
    stores = True  # a failure here is the storage's, never the message's

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, run: TaskRun, ctx: Context) -> None:
        task, into = run.task, run.pending
        ctx.memory.register_task(dataclasses.replace(task_info(task), task_id=into),
                                 [e.input for e in task.train])
        now = time.time()
        records = []
        synthetic = {e.input for e in run.synthetic}
        for p in run.learned.predictions:
            if p.split == "train" and p.input in synthetic:
                p = dataclasses.replace(p, split="synthetic")
            if p.split != ATTEMPT or p.correct:  # a wrong attempt is not an example seen
                records.append(Record(into, p.input, p.target, "experience", p.split,
                                      p.prediction, p.correct, p.loss, now))
            if not p.correct:
                records.append(Record(into, p.input, p.target, "error", p.split,
                                      p.prediction, False, p.loss, now))
        ctx.memory.add(records)  # durable in SQLite; the FAISS snapshot is written at the commit


class Consolidate:
    """Merge the adapters that answer for the tasks of this kind (task-agnostic use)."""

    name = "consolidate"

    def applies(self, ctx: Context) -> bool:
        return separate_agnostic(ctx) and ctx.cfg.learner.consolidate != "none"

    def run(self, run: TaskRun, ctx: Context) -> None:
        if run.agnostic_due:
            keys = [ctx.answer_key(t, run) for t in [*ctx.state.task_ids(), run.task.task_id]]
            run.consolidated = ctx.agnostic.consolidate(run.task.kind, keys, run.event)


class Evaluate:
    """Score every seen task task-aware (its answering adapter; scores of unchanged adapters
    are cached) and, where it differs, task-agnostic: the new rows of both matrices."""

    name = "evaluate"

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, run: TaskRun, ctx: Context) -> None:
        task = run.task
        run.row = {task.task_id: run.learned.final}
        ctx.scores[(task.task_id, ctx.answer_key(task.task_id, run))] = run.learned.final
        for task_id in ctx.state.task_ids():
            if task_id == task.task_id:
                continue
            key = ctx.answer_key(task_id, run)
            if (task_id, key) not in ctx.scores:
                ctx.beat("evaluate", task_id)
                seen = ctx.state.load_task(task_id)
                learner = ctx.learners[seen.kind]
                use = key if learner.has_adapter(key) else None  # its adapter is missing
                ctx.scores[(task_id, key)] = learner.evaluate(seen, use)
            run.row[task_id] = ctx.scores[(task_id, key)]
        if separate_agnostic(ctx) and run.agnostic_due:
            run.agnostic_row = _agnostic_row(ctx, [*ctx.state.task_ids(), task.task_id], run)
        for method in run.methods:  # what each learning method does once the task is scored
            figures = method.after_evaluate(task, run.learned, run.recalled.get(method.name),
                                            ctx)
            if figures:
                run.figures[method.name] = dict(figures)


def _agnostic_row(ctx: Context, task_ids: Sequence[str], run: TaskRun | None) -> dict[str, float]:
    return ctx.agnostic.score_all(list(task_ids), lambda task_id: ctx.task(task_id, run),
                                  lambda task_id: ctx.beat("evaluate", task_id))


def consolidate_idle(ctx: Context) -> bool:
    """Merge and score the task-agnostic row of the latest event if it has none yet (the
    stream is idle); returns whether it did. Raises `Stopped` when asked to stop (nothing is
    committed then; the next idle moment starts again)."""
    if not (separate_agnostic(ctx) and ctx.state.entries) or ctx.state.agnostic_measured():
        return False
    started = time.perf_counter()
    event, consolidated = len(ctx.state.entries), {}
    if ctx.cfg.learner.consolidate != "none":
        for kind in dict.fromkeys(e.kind for e in ctx.state.entries):
            ctx.beat("consolidate", f"@{kind}")
            keys = [ctx.answer_key(e.task_id) for e in ctx.state.entries if e.kind == kind]
            path = ctx.agnostic.consolidate(kind, keys, event)
            if path:
                consolidated[kind] = path
    row = _agnostic_row(ctx, ctx.state.task_ids(), None)
    ctx.state.record_agnostic(row, consolidated)
    spent = time.perf_counter() - started
    ctx.metrics.task_duration.labels(phase="consolidate_idle").observe(spent)
    summary = ctx.state.agnostic_metrics()
    log.info("idle: merged and scored %d tasks without their ids in %.1f s (ACC %.3f)",
             len(row), spent, summary.acc if summary else float("nan"))
    return True


PHASES: list[Phase] = [Recall(), Synthesize(), Init(), Train(), Promote(), Persist(), Remember(),
                       Consolidate(), Evaluate()]


def commit(run: TaskRun, ctx: Context) -> None:
    """Record the learning event in the state (the commit point), then let the pending
    memory records replace the previous version's; sets the task's result."""
    task, outcome = run.task, run.learned
    assert run.adapter_dir is not None, "the persist phase has not run"
    probe = outcome.probe
    entry = TaskEntry(
        task_id=task.task_id,
        column=task.task_id if run.version == 1 else f"{task.task_id}#v{run.version}",
        version=run.version, content_hash=task.content_hash, kind=task.kind,
        adapter=str(run.adapter_dir.relative_to(ctx.state.root)),
        zero_shot=outcome.zero_shot, initial=outcome.initial, final=outcome.final,
        init_from=outcome.init_from, steps=outcome.steps,
        train_examples=outcome.train_examples, replay_examples=outcome.replay_examples,
        seconds={**run.timings, **{f"learner_{k}": v for k, v in outcome.seconds.items()}},
        learned_at=time.time(), adapter_key=ctx.strategy.adapter_key(task.task_id),
        probe=dataclasses.asdict(probe) if probe else None,
        curve=[list(point) for point in outcome.curve], task_file=run.task_file,
        extras=_extras({**outcome.extras, **run.figures}, _flywheel(run)),
    )
    # (row, score before) of the task-agnostic matrix; None: not measured this event
    agnostic: tuple[dict[str, float], float | None] | None = None
    if ctx.cfg.learner.task_agnostic and not separate_agnostic(ctx):
        agnostic = (run.row, outcome.initial)  # one adapter answers with or without the id
    elif ctx.cfg.learner.task_agnostic and run.agnostic_row is not None:
        agnostic = (run.agnostic_row, run.agnostic_before)
    consolidated: dict[str, str] | None = (
        {task.kind: run.consolidated} if run.consolidated else None)
    cut = dict(task.truncated)
    if outcome.inputs_cut:
        cut["model_max_length"] = outcome.inputs_cut

    def result(summary: dict[str, float]) -> str:  # kept in the outbox until published
        return learned_result(task, entry, ctx.state.root, summary, cut).to_json().decode()

    # the commit point: one transaction; a lock held elsewhere or a full disk holds the
    # stream here (nothing is visible until it commits) instead of failing the task
    body = ctx.retry("commit", ctx.state.record, entry, run.row, agnostic, run.promoted,
                     consolidated, result)
    run.result = TaskResult.from_json(body)
    _after_commit(run, ctx, entry)


def _after_commit(run: TaskRun, ctx: Context, entry: TaskEntry) -> None:
    """What follows the commit point never fails the task, which is learned now: the
    pending memory records take the task's id (redone on start where this fails)."""
    task, outcome = run.task, run.learned
    try:
        ctx.retry("adopt", ctx.memory.adopt, run.pending, task.task_id)
        ctx.memory.flush()
    except Exception:  # noqa: BLE001  # committed: the next start adopts them (restore.py)
        log.exception("task %s: committed; its memory records are adopted on the next start",
                      task.task_id)
    ctx.missing.discard(entry.adapter_key or task.task_id)
    ctx.metrics.tasks_learned.inc()
    ctx.metrics.last_task_timestamp.set(time.time())
    for name, figures in entry.extras.items():
        if name in ctx.metrics.methods:
            ctx.metrics.methods[name](entry.column, figures)
    if "synthesis" in entry.extras:  # a synthesis task's own figures, or the flywheel's
        ctx.metrics.set_synthesis(entry.extras["synthesis"])
    if outcome.inputs_cut:
        log.warning("task %s: %d inputs are longer than the model's max_length=%d tokens; only "
                    "their start is read", task.task_id, outcome.inputs_cut, outcome.max_length)
        ctx.metrics.input_truncated.labels(what="model_max_length").inc(outcome.inputs_cut)
    summary = ctx.state.metrics().as_dict()
    log.info(
        "task %s: learned v%d: zero-shot %.3f, initial %.3f, final %.3f (init from %s, "
        "%d replayed) | ACC %.3f BWT %+.3f FWT %+.3f", task.task_id, entry.version,
        entry.zero_shot, entry.initial, entry.final, entry.init_from,
        entry.replay_examples, summary["acc"], summary["bwt"], summary["fwt"],
    )


def _extras(learned: Mapping[str, Mapping[str, Any]],
            flywheel: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each method's figures by its name (and a synthesis task's own), JSON-able."""
    out = {name: dict(figures) for name, figures in learned.items()}
    if flywheel:
        out["synthesis"] = {**out.get("synthesis", {}), **flywheel}
    return out


def _flywheel(run: TaskRun) -> dict[str, float]:
    """A classification task's synthetic data: generated, kept, and the label agreement of
    the kept examples with the trained adapter."""
    if not run.flywheel:
        return {}
    agreement = kept_agreement(run)
    return {**run.flywheel, **({"kept_agreement": agreement} if agreement is not None else {})}


def learned_result(task: Task, entry: TaskEntry, root: Path, summary: Mapping[str, float],
                   cut: Mapping[str, int] | None = None) -> TaskResult:
    """The `learned` result of a committed entry; `summary`: the transfer metrics with it."""
    return TaskResult(
        task.task_id, "learned", task.content_hash, entry.version,
        metrics={"zero_shot": entry.zero_shot, "initial": entry.initial,
                 "final": entry.final, **summary},
        adapter_path=str(root / entry.adapter), timings=entry.seconds,
        truncated=dict(task.truncated if cut is None else cut), extras=entry.extras,
    )
