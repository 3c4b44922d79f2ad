"""The main loop: poll → validate → recall → learn → evaluate all → persist → ack → report.

One task at a time, on the calling thread. A task is committed (state.json written) only
after its adapter, its definition and its memory records are durable; the source is
acknowledged after that, so a crash at any point redelivers the task, and a redelivered
task that is already committed is acknowledged without training (idempotent by task id
and content hash).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synlearner.daemon.agnostic import TaskAgnostic
from synlearner.daemon.attempts import Attempts
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.settle import Settler, Stopped
from synlearner.daemon.state import State, TaskEntry
from synlearner.learner.base import SHARED, Learner, LearnOutcome, LearnPlan, check_learnable
from synlearner.memory.base import (
    PENDING,
    Memory,
    Record,
    ReplayItem,
    ReplayRequest,
    TaskInfo,
    Vectors,
    pending_id,
)
from synlearner.stream.base import Delivery, ResultSink, TaskSource
from synlearner.stream.boundary import decode, describe, is_transient
from synlearner.stream.errors import InvalidTask
from synlearner.stream.schema import Limits, Task, TaskResult

log = logging.getLogger("synlearner.daemon")
__all__ = ["Daemon", "LoopSettings", "Stopped"]


@dataclass(frozen=True)
class LoopSettings:
    limits: Limits
    poll_timeout_s: float = 1.0
    init: str = "nearest"  # fresh | nearest
    min_init_similarity: float = 0.5
    similar_tasks: int = 3
    replay_policy: str = "errors_first"
    replay_ratio: float = 0.5
    replay_max: int = 256
    seed: int = 0
    drain: bool = False
    progress_every_steps: int = 10
    # the strategy: one adapter per task, one shared adapter trained task after task, or one
    # adapter trained on the whole (drained) stream at once ("joint": the multitask bound)
    adapters: str = "per-task"  # per-task | shared | joint
    steps: int = 0  # optimiser steps per task (0: the learner's epochs/max_steps rule)
    init_probe_steps: int = 0  # >0: nearest-vs-fresh start checked on held-out train data
    consolidate: str = "none"  # none (task-agnostic use routes to a task adapter) | ties | linear
    task_agnostic: bool = True  # also fill the task-agnostic accuracy matrix
    curve_every: int = 0  # >0: record eval accuracy every that many steps while training
    promote: bool = False  # let a later adapter of a task's lineage answer for it when better
    max_attempts: int = 3  # a message taken up more often without being settled is quarantined
    backoff_max_s: float = 60.0  # longest wait between retries of a transient failure


@dataclass
class EventFiles:
    """What a learning event wrote before its commit (paths of its own)."""

    adapter: Path  # the trained adapter's folder
    pending: str  # the memory task id its records wait under
    task_file: str = ""  # its definition, relative to the state dir
    consolidated: str | None = None  # the consolidated adapter it merged, if any


class Daemon:
    def __init__(
        self,
        settings: LoopSettings,
        source: TaskSource,
        results: ResultSink,
        memory: Memory,
        learners: Mapping[str, Learner],
        state: State,
        metrics: Metrics,
        attempts: Attempts | None = None,
    ) -> None:
        self.s = settings
        self.source = source
        self.results = results
        self.memory = memory
        self.learners = dict(learners)
        self.state = state
        self.metrics = metrics
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self.settler = Settler(source, results, attempts or Attempts(state.root / "attempts"),
                               metrics, self._stop, settings.max_attempts, settings.backoff_max_s,
                               on_wait=self._holding)
        self._delivery: Delivery | None = None  # the message being worked on
        self.heartbeat = time.monotonic()
        self.phase = "starting"
        self.current: str | None = None
        self._snapshot: dict[str, Any] = {}
        self._promoted: dict[str, str] = {}  # answer changes of the task being learned
        self._scores: dict[tuple[str, str], float] = {}  # (task id, adapter key) -> eval acc
        self.agnostic = TaskAgnostic(settings.consolidate, memory, self.learners, state, self._key)
        self._reconcile_memory()
        self._restore_adapters()
        self.refresh_gauges()

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Run until `stop()` (or, with `drain`, until the stream is empty)."""
        log.info("daemon: running (%d tasks learned so far)", len(self.state.entries))
        if self.s.adapters == "joint":
            self._run_joint()
            self.phase = "stopped"
            return
        while not self._stop.is_set():
            self._run_jobs()
            self.phase = "idle"
            self.heartbeat = time.monotonic()
            try:
                delivery = self.settler.retry("poll", self.source.poll, self.s.poll_timeout_s)
            except Stopped:
                break
            if delivery is None:
                if self.s.drain and self.source.pending() == 0:
                    log.info("daemon: stream drained")
                    break
                continue
            try:
                self.handle(delivery)
            except Stopped:
                log.info("daemon: stopped during %r; it will be redelivered", delivery.ref)
                self.settler.release(delivery)
                break
        self.phase = "stopped"

    def _holding(self, what: str) -> None:
        """Backing off a transient failure is a deliberate wait, not a stall."""
        self.phase = f"holding ({what})"
        self.heartbeat = time.monotonic()

    def _run_joint(self) -> None:
        """The multitask bound: take every task of the stream, then learn them all at once."""
        batch: dict[str, tuple[Task, list[Delivery]]] = {}
        while not self._stop.is_set():
            self._run_jobs()
            self.phase = "collecting"
            self.heartbeat = time.monotonic()
            delivery = self.settler.retry("poll", self.source.poll, self.s.poll_timeout_s)
            if delivery is None:
                if self.source.pending() == 0:
                    break
                continue
            if not self.settler.begin(delivery):
                continue
            task = self._accept(delivery)
            if task is not None:  # a later version of a task replaces the earlier one
                batch[task.task_id] = (task, [*batch.get(task.task_id, (task, []))[1], delivery])
        if not batch or self._stop.is_set():
            return
        log.info("daemon: stream drained; learning %d tasks jointly", len(batch))
        try:
            results = self.learn_joint([task for task, _ in batch.values()])
        except Stopped:
            log.info("daemon: stopped during joint learning; the tasks will be redelivered")
            return
        for result, (_, deliveries) in zip(results, batch.values(), strict=True):
            for delivery in deliveries:
                self._publish(result, delivery)

    def _run_jobs(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            job()

    def _reconcile_memory(self) -> None:
        """Finish or drop versions that were mid-commit when the process stopped: pending
        records of the committed version take the task's id, the rest are dropped."""
        for pid in self.memory.task_ids():
            if PENDING not in pid:
                continue
            task_id, content_hash = pid.split(PENDING, 1)
            entry = self.state.latest(task_id)
            if entry is not None and entry.content_hash == content_hash:
                log.info("memory: finishing the commit of %s", task_id)
                self.memory.adopt(pid, task_id)
            else:
                self.memory.forget_task(pid)
        self.memory.flush()

    def _restore_adapters(self) -> None:
        loaded: set[str] = set()
        for entry in reversed(self.state.entries):  # the latest adapter of each key
            key = entry.adapter_key or entry.task_id
            learner = self.learners.get(entry.kind)
            if key in loaded or learner is None:
                continue
            learner.load_adapter(key, self.state.root / entry.adapter)
            loaded.add(key)
        if self._separate_agnostic():
            self.agnostic.restore()

    def refresh_gauges(self) -> None:
        """Update gauges and the status snapshot (main thread only: it reads SQLite)."""
        counts = self.memory.counts()
        pending = self.source.pending()
        transfer = self.state.metrics().as_dict() if self.state.entries else {}
        latest = self.state.latest_scores()
        self.metrics.set_memory(counts)
        self.metrics.stream_pending.set(pending)
        agnostic = self.state.agnostic_metrics()
        if transfer:
            self.metrics.set_transfer(transfer, latest)
        if agnostic is not None:
            self.metrics.set_task_agnostic(agnostic.as_dict())
        self._snapshot = {"tasks_learned": len(self.state.entries), "memory": counts,
                          "pending": pending, "transfer": transfer, "latest_accuracy": latest}

    # -- one message ---------------------------------------------------------------------
    def handle(self, delivery: Delivery) -> None:
        """Settle one message: learned, duplicate or dead letter (never raises but `Stopped`)."""
        if not self.settler.begin(delivery):
            return
        self._delivery = delivery
        try:
            task = self._accept(delivery)
            if task is not None:
                self._learn_settled(task, delivery)
        finally:
            self._delivery = None

    def _learn_settled(self, task: Task, delivery: Delivery) -> None:
        self.current = task.task_id
        self.metrics.busy.set(1)
        failures = 0
        try:
            while True:
                try:
                    result = self.learn(task, delivery)
                    break
                except Stopped:
                    raise
                except Exception as exc:
                    self._restore_committed(task)
                    if not is_transient(exc):
                        log.exception("task %s: failed", task.task_id)
                        self.settler.dead_letter(delivery, f"learning failed: {describe(exc)}",
                                                 "learning_failed", task.task_id, "failed",
                                                 task.content_hash)
                        return
                    failures += 1
                    self.settler.hold("learn", exc, failures)
        finally:
            self.current = None
            self.metrics.busy.set(0)
        self._publish(result, delivery)

    def _restore_committed(self, task: Task) -> None:
        """After a failed attempt, put back the committed adapter the attempt overwrote."""
        entry = self.state.latest(task.task_id)
        learner = self.learners.get(task.kind)
        if entry is None or learner is None:
            return
        key = entry.adapter_key or entry.task_id
        try:
            learner.load_adapter(key, self.state.root / entry.adapter)
        except Exception:  # noqa: BLE001  # best effort: the next start loads it again
            log.exception("task %s: could not reload the committed adapter %s", task.task_id, key)

    def _publish(self, result: TaskResult, delivery: Delivery) -> None:
        # result before ack: a crash in between redelivers the task, which is then acknowledged
        # as a duplicate, so every committed task has its "learned" result at least once
        self.settler.acknowledge(delivery, result)
        if delivery.published_at:
            latency = time.time() - delivery.published_at
            self.metrics.publish_to_learned.observe(max(0.0, latency))
            log.info("task %s: learned %.1f s after it was published", result.task_id, latency)

    def _accept(self, delivery: Delivery) -> Task | None:
        """Decode a delivery; dead-letter or acknowledge it here unless it is to be learned."""
        self.metrics.tasks_received.inc()
        t0 = time.perf_counter()
        try:
            if delivery.rejected:
                raise InvalidTask(delivery.rejected, code="unreadable")
            task = self.settler.retry("decode", decode, delivery.raw, self.s.limits)
            if task.kind not in self.learners:
                raise InvalidTask(f"kind: no learner for {task.kind!r} tasks is configured",
                                  task.task_id, code="unsupported")
        except InvalidTask as exc:
            self.settler.dead_letter(delivery, exc.reason, exc.code, exc.task_id)
            return None
        self.metrics.task_duration.labels(phase="validate").observe(time.perf_counter() - t0)
        if task.truncated:
            log.warning("task %s: cut to fit stream.limits (on_oversize=truncate): %s",
                        task.task_id, ", ".join(f"{k} {v}" for k, v in task.truncated.items()))
            for what, n in task.truncated.items():
                self.metrics.input_truncated.labels(what=what).inc(n)
        if self.state.is_learned(task.task_id, task.content_hash):
            entry = self.state.latest(task.task_id)
            log.info("task %s: already learned (hash %s), acknowledging", task.task_id,
                     task.content_hash)
            self.settler.acknowledge(delivery, TaskResult(
                task.task_id, "duplicate", task.content_hash, entry.version if entry else 0,
                adapter_path=entry.adapter if entry else ""))
            self.metrics.tasks_duplicate.inc()
            return None
        return task

    # -- learning ------------------------------------------------------------------------
    def _phase(self, name: str, task_id: str) -> None:
        self.phase = name
        self.heartbeat = time.monotonic()
        if self._stop.is_set():
            raise Stopped(name)
        self.settler.note(self._delivery, f"phase {name} of task {task_id}")
        log.info("task %s: %s", task_id, name)

    def _progress(self, task_id: str) -> Callable[[str, int, int, float], None]:
        every = self.s.progress_every_steps

        def report(phase: str, step: int, total: int, loss: float) -> None:
            self.heartbeat = time.monotonic()
            self.metrics.train_steps.inc()
            self.metrics.train_loss.set(loss)
            if step % every == 0 or step == total:
                log.info("task %s: %s step %d/%d loss %.4f", task_id, phase, step, total, loss)
            if self._stop.is_set():
                raise Stopped(f"{phase} step {step}")

        return report

    def _timed(self, phase: str, timings: dict[str, float], started: float) -> float:
        now = time.perf_counter()
        timings[phase] = timings.get(phase, 0.0) + now - started
        self.metrics.task_duration.labels(phase=phase).observe(now - started)
        return now

    def _key(self, task_id: str) -> str:
        """The adapter that answers for `task_id` when the task is known."""
        if self.s.adapters != "per-task":
            return SHARED
        return self._promoted.get(task_id) or self.state.answer_key(task_id)

    def _plan(self, task: Task, init_from: str | None) -> LearnPlan:
        if self.s.adapters == "per-task":
            return LearnPlan(task.task_id, init_from, steps=self.s.steps,
                             probe_steps=self.s.init_probe_steps, curve_every=self.s.curve_every)
        return LearnPlan(SHARED, resume=True, steps=self.s.steps, curve_every=self.s.curve_every)

    def learn(self, task: Task, delivery: Delivery) -> TaskResult:
        learner = self.learners[task.kind]
        timings: dict[str, float] = {}
        t = time.perf_counter()
        check_learnable(task)
        self._phase("recall", task.task_id)
        event = self.state.next_event
        pending = pending_id(task.task_id, task.content_hash)
        self.memory.forget_task(pending)  # leftovers of an interrupted attempt
        queries = self.memory.embedder.embed([e.input for e in task.train])
        init_from = self._choose_init(task, queries, learner)
        replay = self._recall(task, queries)
        t = self._timed("recall", timings, t)
        agnostic_before = self.agnostic.score(task) if self._separate_agnostic() else None

        self._phase("train", task.task_id)
        plan = self._plan(task, init_from)
        self._promoted = {}
        self._scores = {k: v for k, v in self._scores.items() if k[1] != plan.adapter}
        outcome = learner.learn(task, replay, plan, self._progress(task.task_id))
        t = self._timed("train", timings, t)
        self._promoted = self._promote(task, learner, outcome)
        self.metrics.train_examples.inc(outcome.train_examples)
        self.metrics.replay_examples.inc(outcome.replay_examples)

        self._phase("persist", task.task_id)
        key = task.task_id if self.s.adapters == "per-task" else SHARED
        files = EventFiles(self.state.adapter_dir(key, event), pending)
        learner.save_adapter(key, files.adapter)
        files.task_file = self.state.save_task(task, self._version(task))
        self._remember(task, queries, outcome, pending)
        if self._separate_agnostic():
            files.consolidated = self.agnostic.consolidate(
                task.kind, [self._key(t) for t in [*self.state.task_ids(), task.task_id]], event)
        t = self._timed("persist", timings, t)

        self._phase("evaluate", task.task_id)
        row = self._evaluate_all(task, outcome)
        agnostic_row = row
        if agnostic_before is not None:
            agnostic_row = {tid: self.agnostic.score(self._task(tid, task))
                            for tid in [*self.state.task_ids(), task.task_id]}
        self._timed("evaluate", timings, t)
        initial = outcome.initial if agnostic_before is None else agnostic_before
        return self._commit(task, outcome, row, timings, files, (agnostic_row, initial))

    def learn_joint(self, tasks: list[Task]) -> list[TaskResult]:
        """Train one shared adapter per kind on all `tasks` together, `steps` x tasks steps."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        self._phase("recall", "joint")
        event = self.state.next_event
        queries = {}
        for task in tasks:
            self.memory.forget_task(task.task_id)
            queries[task.task_id] = self.memory.embedder.embed([e.input for e in task.train])
        t = self._timed("recall", timings, t)
        outcomes: dict[str, LearnOutcome] = {}
        for kind in dict.fromkeys(task.kind for task in tasks):
            group = [task for task in tasks if task.kind == kind]
            anchor, others = group[-1], group[:-1]
            together = [ReplayItem(Record(o.task_id, e.input, e.output), _info(o))
                        for o in others for e in o.train]
            self._phase("train", "joint")
            plan = LearnPlan(SHARED, steps=self.s.steps * len(group))
            outcomes[kind] = self.learners[kind].learn(anchor, together, plan,
                                                       self._progress("joint"))
            self.learners[kind].save_adapter(SHARED, self.state.adapter_dir(SHARED, event))
        t = self._timed("train", timings, t)
        self._phase("persist", "joint")
        task_files = {}
        for task in tasks:
            task_files[task.task_id] = self.state.save_task(task, 1)
            self.memory.register_task(_info(task), queries[task.task_id])
            self.memory.add([Record(task.task_id, e.input, e.output, timestamp=time.time())
                             for e in task.train])
        self.memory.flush()
        t = self._timed("persist", timings, t)
        self._phase("evaluate", "joint")
        everything = {tid: self.state.load_task(tid) for tid in self.state.task_ids()}
        everything.update({task.task_id: task for task in tasks})
        row = {tid: self.learners[task.kind].evaluate(task, SHARED)
               for tid, task in everything.items()}
        self._timed("evaluate", timings, t)
        entries = []
        for task in tasks:
            outcome = outcomes[task.kind]
            zero = self.learners[task.kind].evaluate(task, None)
            entries.append(TaskEntry(
                task_id=task.task_id, column=task.task_id, version=1,
                content_hash=task.content_hash, kind=task.kind,
                adapter=str(self.state.adapter_dir(SHARED, event).relative_to(self.state.root)),
                zero_shot=zero, initial=zero, final=row[task.task_id], init_from=None,
                steps=outcome.steps, train_examples=len(task.train), replay_examples=0,
                seconds=dict(timings), learned_at=time.time(), adapter_key=SHARED,
                task_file=task_files[task.task_id]))
        self.state.record_joint(entries, row)  # the commit point
        return [self._committed(task, entry, self.state.adapter_dir(SHARED, event))
                for task, entry in zip(tasks, entries, strict=True)]

    def _separate_agnostic(self) -> bool:
        """Shared adapters answer the same with or without the task id."""
        return self.s.task_agnostic and self.s.adapters == "per-task"

    def _task(self, task_id: str, current: Task) -> Task:
        return current if task_id == current.task_id else self.state.load_task(task_id)

    def _promote(self, task: Task, learner: Learner, outcome: LearnOutcome) -> dict[str, str]:
        """Backward transfer for per-task adapters.

        The new adapter started from `init_from`'s and trained with replay of the past, so
        it may now answer earlier tasks of its lineage better than their own adapters. Each
        task answered by an adapter of the lineage is scored on its own train data with both;
        the new adapter takes over where it is strictly better there.
        """
        if not self.s.promote or self.s.adapters != "per-task" or outcome.init_from is None:
            return {}
        lineage: set[str] = set()
        source: str | None = outcome.init_from
        while source is not None and source not in lineage:
            lineage.add(source)
            entry = self.state.latest(source)
            source = entry.init_from if entry else None
        promoted = {}
        for task_id in self.state.task_ids():
            current = self._key(task_id)
            if task_id == task.task_id or current not in lineage:
                continue
            seen = self.state.load_task(task_id)
            if seen.kind != task.kind:
                continue
            on_train = dataclasses.replace(seen, eval=seen.train)
            mine = learner.evaluate(on_train, task.task_id)
            theirs = learner.evaluate(on_train, current)
            if mine > theirs:
                log.info("task %s: now answered by %s (train accuracy %.3f vs %.3f)", task_id,
                         task.task_id, mine, theirs)
                promoted[task_id] = task.task_id
        return promoted

    def _version(self, task: Task) -> int:
        previous = self.state.latest(task.task_id)
        return previous.version + 1 if previous else 1

    def _commit(self, task: Task, outcome: LearnOutcome, row: dict[str, float],
                timings: dict[str, float], files: EventFiles,
                agnostic: tuple[dict[str, float], float] | None = None) -> TaskResult:
        key = task.task_id if self.s.adapters == "per-task" else SHARED
        adapter_dir = files.adapter
        version = self._version(task)
        probe = outcome.probe
        entry = TaskEntry(
            task_id=task.task_id,
            column=task.task_id if version == 1 else f"{task.task_id}#v{version}",
            version=version, content_hash=task.content_hash, kind=task.kind,
            adapter=str(adapter_dir.relative_to(self.state.root)),
            zero_shot=outcome.zero_shot, initial=outcome.initial, final=outcome.final,
            init_from=outcome.init_from, steps=outcome.steps,
            train_examples=outcome.train_examples, replay_examples=outcome.replay_examples,
            seconds={**timings, **{f"learner_{k}": v for k, v in outcome.seconds.items()}},
            learned_at=time.time(), adapter_key=key,
            probe=dataclasses.asdict(probe) if probe else None,
            curve=[list(point) for point in outcome.curve], task_file=files.task_file,
        )
        consolidated: dict[str, str] | None = (
            {task.kind: files.consolidated} if files.consolidated else None)
        self.state.record(entry, row, agnostic if self.s.task_agnostic else None,
                          self._promoted, consolidated)  # the commit point
        self.memory.adopt(files.pending, task.task_id)  # redone on start if a crash intervenes
        self.memory.flush()
        self._promoted = {}
        cut = dict(task.truncated)
        if outcome.inputs_cut:
            log.warning("task %s: %d inputs are longer than the model's max_length=%d tokens; "
                        "only their start is read", task.task_id, outcome.inputs_cut,
                        outcome.max_length)
            cut["model_max_length"] = outcome.inputs_cut
            self.metrics.input_truncated.labels(what="model_max_length").inc(outcome.inputs_cut)
        return self._committed(task, entry, adapter_dir, cut)

    def _committed(self, task: Task, entry: TaskEntry, adapter_dir: Path,
                   cut: Mapping[str, int] | None = None) -> TaskResult:
        self.metrics.tasks_learned.inc()
        self.metrics.last_task_timestamp.set(time.time())
        self.refresh_gauges()
        summary = self.state.metrics().as_dict()
        log.info(
            "task %s: learned v%d: zero-shot %.3f, initial %.3f, final %.3f (init from %s, "
            "%d replayed) | ACC %.3f BWT %+.3f FWT %+.3f", task.task_id, entry.version,
            entry.zero_shot, entry.initial, entry.final, entry.init_from,
            entry.replay_examples, summary["acc"], summary["bwt"], summary["fwt"],
        )
        return TaskResult(
            task.task_id, "learned", task.content_hash, entry.version,
            metrics={"zero_shot": entry.zero_shot, "initial": entry.initial,
                     "final": entry.final, **summary},
            adapter_path=str(adapter_dir), timings=entry.seconds,
            truncated=dict(task.truncated if cut is None else cut),
        )

    def _choose_init(self, task: Task, queries: Vectors, learner: Learner) -> str | None:
        if self.s.init == "fresh" or self.s.adapters != "per-task":
            return None
        t = time.perf_counter()
        similar = self.memory.similar_tasks(queries, self.s.similar_tasks, exclude=task.task_id)
        self.metrics.memory_search.labels(operation="similar_tasks").observe(
            time.perf_counter() - t)
        for task_id, similarity in similar:
            info = self.memory.task_info(task_id)
            if (similarity >= self.s.min_init_similarity and info is not None
                    and info.kind == task.kind and learner.has_adapter(task_id)):
                log.info("task %s: initialising from %s (similarity %.3f)", task.task_id,
                         task_id, similarity)
                return task_id
        return None

    def _recall(self, task: Task, queries: Vectors) -> list[ReplayItem]:
        n = min(self.s.replay_max, round(self.s.replay_ratio * len(task.train)))
        if n <= 0:
            return []
        t = time.perf_counter()
        items = self.memory.replay(
            self.s.replay_policy, ReplayRequest(task.task_id, queries, n, seed=self.s.seed))
        self.metrics.memory_search.labels(operation="replay").observe(time.perf_counter() - t)
        return [i for i in items if i.task.kind == task.kind]

    def _remember(self, task: Task, queries: Vectors, outcome: LearnOutcome, into: str) -> None:
        """Write the task's experience and errors under the pending id `into`."""
        self.memory.register_task(dataclasses.replace(_info(task), task_id=into), queries)
        now = time.time()
        records = []
        for p in outcome.predictions:
            base = Record(into, p.input, p.target, "experience", p.split, p.prediction,
                          p.correct, p.loss, now)
            records.append(base)
            if not p.correct:
                records.append(Record(into, p.input, p.target, "error", p.split,
                                      p.prediction, False, p.loss, now))
        self.memory.add(records)
        self.memory.flush()

    def _evaluate_all(self, task: Task, outcome: LearnOutcome) -> dict[str, float]:
        """Score every seen task with the adapter that answers for it (task-aware)."""
        row = {task.task_id: outcome.final}
        self._scores[(task.task_id, self._key(task.task_id))] = outcome.final
        for task_id in self.state.task_ids():
            if task_id == task.task_id:
                continue
            key = self._key(task_id)
            if (task_id, key) not in self._scores:  # an adapter that did not change scores the same
                self._phase("evaluate", task_id)
                seen = self.state.load_task(task_id)
                self._scores[(task_id, key)] = self.learners[seen.kind].evaluate(seen, key)
            row[task_id] = self._scores[(task_id, key)]
        return row

    def status(self) -> dict[str, Any]:
        """For the HTTP thread: the live phase plus the last snapshot of the main loop."""
        return {"phase": self.phase, "current_task": self.current, **self._snapshot}


def _info(task: Task) -> TaskInfo:
    return TaskInfo(task.task_id, task.kind, task.instruction, task.labels, len(task.train))
