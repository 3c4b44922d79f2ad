"""Learning strategies, chosen by `learner.adapters` from a small registry.

A strategy says which adapter a task trains, which adapter answers for a task, and how
long and from where it learns (`LearnPlan`):

* `per-task`: one adapter per task, started fresh or from the nearest past task's (checked
  by the learner's probe); a later adapter of its lineage may take over answering for it
  (promotion); a consolidated adapter answers without a task id.
* `shared`: one adapter (`@shared`), trained task after task (sequential fine-tuning, or
  experience replay with `memory.replay`).
* `joint`: one adapter trained once on the whole drained stream (the multitask bound);
  it learns a batch, not one task at a time (`collects`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synlearner.daemon.state import State, TaskEntry
from synlearner.learner.base import SHARED, LearnPlan
from synlearner.memory.base import Record, ReplayItem, TaskInfo
from synlearner.stream.schema import Task

if TYPE_CHECKING:
    from synlearner.daemon.runner import Context, TaskRun


def task_info(task: Task) -> TaskInfo:
    return TaskInfo(task.task_id, task.kind, task.instruction, task.labels, len(task.train))


@dataclass(frozen=True)
class Strategy:
    """Which adapter a task trains and which answers for it; how it learns (`plan`)."""

    name: str
    per_task: bool  # each task trains an adapter of its own (else one shared adapter)
    collects: bool = False  # learns the whole drained stream at once (`Joint.learn_all`)

    def adapter_key(self, task_id: str) -> str:
        return task_id if self.per_task else SHARED

    def answer_key(self, task_id: str, state: State, promoted: dict[str, str]) -> str:
        """Per-task: the task's own adapter, or a later one of its lineage that took over."""
        if not self.per_task:
            return SHARED
        return promoted.get(task_id) or state.answer_key(task_id)

    def plan(self, run: TaskRun, ctx: Context) -> LearnPlan:
        """Per-task: a new adapter from `init_from` or fresh, checked by the learner's probe;
        shared: the one adapter trains on (`resume`)."""
        lc = ctx.cfg.learner
        if not self.per_task:
            return LearnPlan(SHARED, resume=True, steps=lc.train.steps, curve_every=lc.curve_every)
        return LearnPlan(run.task.task_id, run.init_from, steps=lc.train.steps,
                         probe_steps=lc.init_probe_steps, probe_budget=lc.probe_budget,
                         curve_every=lc.curve_every)


@dataclass(frozen=True)
class Joint(Strategy):

    def learn_all(self, tasks: list[Task], ctx: Context) -> list[TaskEntry]:
        """Train one shared adapter per kind on all `tasks` together (`steps` x tasks
        steps), evaluate every task with it, and commit them in one event."""
        timings: dict[str, float] = {}
        event = ctx.state.next_event
        t = _timed(ctx, "recall", timings, time.perf_counter(), lambda: [
            ctx.memory.forget_task(task.task_id) for task in tasks])
        outcomes = {}
        for kind in dict.fromkeys(task.kind for task in tasks):
            group = [task for task in tasks if task.kind == kind]
            anchor, others = group[-1], group[:-1]
            together = [ReplayItem(Record(o.task_id, e.input, e.output), task_info(o))
                        for o in others for e in o.train]
            ctx.beat("train", "joint")
            plan = LearnPlan(SHARED, steps=ctx.cfg.learner.train.steps * len(group))
            outcomes[kind] = ctx.learners[kind].learn(anchor, together, plan, ctx.progress("joint"))
            ctx.learners[kind].save_adapter(SHARED, ctx.state.adapter_dir(SHARED, event))
        t = _timed(ctx, "train", timings, t, lambda: None)
        ctx.beat("persist", "joint")
        task_files = {task.task_id: ctx.state.save_task(task, 1) for task in tasks}
        for task in tasks:
            ctx.memory.register_task(task_info(task), [e.input for e in task.train])
            ctx.memory.add([Record(task.task_id, e.input, e.output, timestamp=time.time())
                            for e in task.train])
        ctx.memory.flush()
        t = _timed(ctx, "persist", timings, t, lambda: None)
        ctx.beat("evaluate", "joint")
        everything = {tid: ctx.state.load_task(tid) for tid in ctx.state.task_ids()}
        everything.update({task.task_id: task for task in tasks})
        row = {tid: ctx.learners[task.kind].evaluate(task, SHARED)
               for tid, task in everything.items()}
        _timed(ctx, "evaluate", timings, t, lambda: None)
        adapter = str(ctx.state.adapter_dir(SHARED, event).relative_to(ctx.state.root))
        entries = []
        for task in tasks:
            outcome = outcomes[task.kind]
            zero = ctx.learners[task.kind].evaluate(task, None)
            entries.append(TaskEntry(
                task_id=task.task_id, column=task.task_id, version=1,
                content_hash=task.content_hash, kind=task.kind, adapter=adapter,
                zero_shot=zero, initial=zero, final=row[task.task_id], init_from=None,
                steps=outcome.steps, train_examples=len(task.train), replay_examples=0,
                seconds=dict(timings), learned_at=time.time(), adapter_key=SHARED,
                task_file=task_files[task.task_id]))
        ctx.state.record_joint(entries, row)  # the commit point
        return entries


def _timed(ctx: Context, phase: str, timings: dict[str, float], started: float,
           work: Callable[[], object]) -> float:
    work()
    now = time.perf_counter()
    timings[phase] = timings.get(phase, 0.0) + now - started
    ctx.metrics.task_duration.labels(phase=phase).observe(now - started)
    return now


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("per-task", per_task=True), Strategy("shared", per_task=False),
    Joint("joint", per_task=False, collects=True))}


def build_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"learner.adapters: unknown strategy {name!r} "
                         f"(known: {sorted(STRATEGIES)})") from None
