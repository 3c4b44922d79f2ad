"""Learning one task: a sequence of phases run by one runner over a shared per-task context.

A phase is a small object with a `name`, an `applies(ctx)` test (read from the config once
the daemon is built) and a `run(task_run, ctx)` step that reads and writes the `TaskRun`.
The runner times each phase the same way (the task's `timings`, the
`synlearner_task_phase_duration_seconds{phase}` histogram, the log line), beats the
heartbeat, notes the phase against the message's attempt record and stops between phases
when asked. Nothing a phase writes is visible until `commit`, the last step, records the
event in the state (one SQLite transaction). A learning method is no phase: it is a plugin
that the phases call (`learner/method.py`), chosen per task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from synlearner.daemon.config import Config
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.settle import Parked, Stopped
from synlearner.daemon.state import State
from synlearner.learner.base import (
    Learner,
    LearnOutcome,
    LearnPlan,
    Progress,
    check_learnable,
)
from synlearner.learner.methods import Method, default_methods, methods_of
from synlearner.memory.base import Memory, ReplayItem, pending_id
from synlearner.stream.boundary import describe, is_out_of_memory, is_transient
from synlearner.stream.errors import StorageFault
from synlearner.stream.schema import Example, Task, TaskResult

if TYPE_CHECKING:
    from synlearner.daemon.agnostic import TaskAgnostic
    from synlearner.daemon.strategies import Strategy

log = logging.getLogger("synlearner.daemon")


@dataclass
class TaskRun:
    """Everything learning one task produces on its way to the commit.

    Glossary: the *task id* names a task across versions; its *adapter key* is the adapter
    it trains (the task id, or `@shared`); its *answer key* is the adapter that answers for
    it (its own, or a later adapter of its lineage that took over); its *column* in the
    accuracy matrix is the task id, or `<task id>#v<N>` for a later version; the *event* is
    the learning event's number (its row of the matrix), which names the folders it writes.
    """

    task: Task
    learner: Learner
    event: int
    version: int
    pending: str  # the memory task id its records wait under until the commit
    timings: dict[str, float] = field(default_factory=dict)
    init_from: str | None = None  # the past task whose adapter it starts from
    replay: list[ReplayItem] = field(default_factory=list)
    methods: list[Method] = field(default_factory=list)  # the learning methods it runs
    recalled: dict[str, Any] = field(default_factory=dict)  # what each method recalled
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # methods' after evaluation
    # classification tasks that ask for synthetic data (`flywheel.py`): the kept examples,
    # trained on with the real ones, and the flywheel's figures
    synthetic: list[Example] = field(default_factory=list)
    flywheel: dict[str, float] = field(default_factory=dict)
    plan: LearnPlan | None = None
    outcome: LearnOutcome | None = None
    promoted: dict[str, str] = field(default_factory=dict)  # task id -> the new answer key
    adapter_dir: Path | None = None
    task_file: str = ""
    consolidated: str | None = None  # the consolidated adapter this event merged
    row: dict[str, float] = field(default_factory=dict)  # task-aware scores by task id
    agnostic_due: bool = False  # this event consolidates and scores the task-agnostic row
    agnostic_before: float | None = None  # task-agnostic score before training on it
    agnostic_row: dict[str, float] | None = None
    result: TaskResult | None = None  # set by the commit

    @property
    def learned(self) -> LearnOutcome:
        if self.outcome is None:
            raise RuntimeError("the train phase has not run")
        return self.outcome


@dataclass
class Context:
    """What the phases share across tasks (built once with the daemon)."""

    cfg: Config
    memory: Memory
    learners: Mapping[str, Learner]
    state: State
    metrics: Metrics
    strategy: Strategy
    agnostic: TaskAgnostic
    beat: Callable[[str, str], None]  # (phase, task id): heartbeat, stop check, attempt note
    progress: Callable[[str], Progress]  # task id -> the training progress callback
    # (what, fn, *args): fn(*args), holding the stream while it fails for want of a resource
    # (a lock held elsewhere, a full disk) until it works or a stop is asked for
    retry: Callable[..., Any] = field(default=lambda _what, fn, *args: fn(*args))
    scores: dict[tuple[str, str], float] = field(default_factory=dict)  # (task, adapter) -> acc
    missing: set[str] = field(default_factory=set)  # adapter keys whose committed folder is gone
    current: TaskRun | None = None  # the task being learned

    def answer_key(self, task_id: str, run: TaskRun | None = None) -> str:
        """The adapter that answers for `task_id`, with the answers the task being learned
        changes (promotion) already in effect."""
        run = run or self.current
        return self.strategy.answer_key(task_id, self.state, run.promoted if run else {})

    def section(self, key: str) -> Any:
        """The config section at dotted `key` (a learning method's `config_key`)."""
        node: Any = self.cfg
        for part in key.split("."):
            node = getattr(node, part)
        return node

    def task(self, task_id: str, run: TaskRun | None) -> Task:
        return run.task if run and task_id == run.task.task_id else self.state.load_task(task_id)


class Phase(Protocol):
    name: str

    def applies(self, ctx: Context) -> bool:
        """Whether this daemon runs the phase at all (from its config and strategy)."""
        ...

    def run(self, task_run: TaskRun, ctx: Context) -> None: ...


class Runner:
    def __init__(self, ctx: Context, phases: Sequence[Phase],
                 commit: Callable[[TaskRun, Context], None]) -> None:
        self.ctx = ctx
        self.phases = [p for p in phases if p.applies(ctx)]
        self._commit = commit

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.phases]

    def start(self, task: Task) -> TaskRun:
        previous = self.ctx.state.latest(task.task_id)
        event, every = self.ctx.state.next_event, self.ctx.cfg.learner.consolidate_every
        return TaskRun(task=task, learner=self.ctx.learners[task.kind], event=event,
                       version=previous.version + 1 if previous else 1,
                       pending=pending_id(task.task_id, task.content_hash),
                       agnostic_due=every > 0 and event % every == 0,
                       methods=methods_of(task, default_methods(self.ctx.cfg.learner)))

    def learn(self, task: Task) -> TaskRun:
        """Run every phase on `task`, then commit; raises `Stopped` between phases and
        `LearningError` for a task that cannot be learned."""
        check_learnable(task)
        run = self.ctx.current = self.start(task)
        try:
            for phase in [*self.phases, _Commit(self._commit)]:
                self.ctx.beat(phase.name, task.task_id)
                started = time.perf_counter()
                _run_phase(phase, run, self.ctx)
                spent = time.perf_counter() - started
                run.timings[phase.name] = run.timings.get(phase.name, 0.0) + spent
                self.ctx.metrics.task_duration.labels(phase=phase.name).observe(spent)
        finally:
            self.ctx.current = None
        return run


def _run_phase(phase: Phase, run: TaskRun, ctx: Context) -> None:
    """Run `phase`; in a phase that keeps what the task produced (`stores`), any failure
    but running out of memory or a requested stop is the storage's (`StorageFault`)."""
    try:
        phase.run(run, ctx)
    except Exception as exc:
        if (not getattr(phase, "stores", False) or is_transient(exc) or is_out_of_memory(exc)
                or isinstance(exc, (Stopped, Parked))):
            raise
        raise StorageFault(f"{phase.name}: {describe(exc)}") from exc


@dataclass
class _Commit:
    commit: Callable[[TaskRun, Context], None]
    name: str = "commit"
    stores: bool = True

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, task_run: TaskRun, ctx: Context) -> None:
        self.commit(task_run, ctx)
