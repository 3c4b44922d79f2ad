"""The main loop: poll → validate → recall → learn → evaluate all → persist → ack → report.

One task at a time, on the calling thread. A task is committed (state.json written) only
after its adapter, its definition and its memory records are durable; the source is
acknowledged after that, so a crash at any point redelivers the task, and a redelivered
task that is already committed is acknowledged without training (idempotent by task id
and content hash).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synlearner.daemon.metrics import Metrics
from synlearner.daemon.state import State, TaskEntry
from synlearner.learner.base import Learner, LearnOutcome
from synlearner.memory.base import Memory, Record, ReplayItem, ReplayRequest, TaskInfo, Vectors
from synlearner.stream.base import Delivery, ResultSink, TaskSource
from synlearner.stream.schema import InvalidTask, Limits, Task, TaskResult, parse_task

log = logging.getLogger("synlearner.daemon")


class Stopped(Exception):
    """Raised inside long work when a stop was requested; the task stays unacknowledged."""


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
        self.heartbeat = time.monotonic()
        self.phase = "starting"
        self.current: str | None = None
        self._snapshot: dict[str, Any] = {}
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
        while not self._stop.is_set():
            self._run_jobs()
            self.phase = "idle"
            self.heartbeat = time.monotonic()
            delivery = self.source.poll(self.s.poll_timeout_s)
            if delivery is None:
                if self.s.drain and self.source.pending() == 0:
                    log.info("daemon: stream drained")
                    break
                continue
            try:
                self.handle(delivery)
            except Stopped:
                log.info("daemon: stopped during %s; it will be redelivered", delivery.ref)
                break
        self.phase = "stopped"

    def _run_jobs(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            job()

    def _restore_adapters(self) -> None:
        for task_id in self.state.task_ids():
            entry = self.state.latest(task_id)
            learner = self.learners.get(entry.kind) if entry else None
            if entry is None or learner is None:
                continue
            learner.load_adapter(task_id, self.state.root / entry.adapter)

    def refresh_gauges(self) -> None:
        """Update gauges and the status snapshot (main thread only: it reads SQLite)."""
        counts = self.memory.counts()
        pending = self.source.pending()
        transfer = self.state.metrics().as_dict() if self.state.entries else {}
        latest = self.state.latest_scores()
        self.metrics.set_memory(counts)
        self.metrics.stream_pending.set(pending)
        if transfer:
            self.metrics.set_transfer(transfer, latest)
        self._snapshot = {"tasks_learned": len(self.state.entries), "memory": counts,
                          "pending": pending, "transfer": transfer, "latest_accuracy": latest}

    # -- one message ---------------------------------------------------------------------
    def handle(self, delivery: Delivery) -> None:
        self.metrics.tasks_received.inc()
        t0 = time.perf_counter()
        try:
            task = parse_task(delivery.raw, self.s.limits)
            if task.kind not in self.learners:
                raise InvalidTask(
                    f"kind: no learner for {task.kind!r} tasks is configured", task.task_id
                )
        except InvalidTask as exc:
            log.warning("dead letter %s: %s", delivery.ref, exc.reason)
            self.source.fail(delivery, exc.reason)
            self.metrics.tasks_dead_lettered.inc()
            self.results.publish(TaskResult(exc.task_id or "", "invalid", error=exc.reason))
            return
        self.metrics.task_duration.labels(phase="validate").observe(time.perf_counter() - t0)
        if self.state.is_learned(task.task_id, task.content_hash):
            entry = self.state.latest(task.task_id)
            log.info("task %s: already learned (hash %s), acknowledging", task.task_id,
                     task.content_hash)
            self.results.publish(TaskResult(
                task.task_id, "duplicate", task.content_hash, entry.version if entry else 0,
                adapter_path=entry.adapter if entry else ""))
            self.source.ack(delivery)
            self.metrics.tasks_duplicate.inc()
            return
        self.current = task.task_id
        self.metrics.busy.set(1)
        try:
            result = self.learn(task, delivery)
        except Stopped:
            raise
        except Exception as exc:  # a valid task that could not be learned: report, go on
            log.exception("task %s: failed", task.task_id)
            self.source.fail(delivery, f"learning failed: {exc}")
            self.metrics.tasks_failed.inc()
            self.results.publish(TaskResult(task.task_id, "failed", task.content_hash,
                                            error=str(exc)))
            return
        finally:
            self.current = None
            self.metrics.busy.set(0)
        # result before ack: a crash in between redelivers the task, which is then acknowledged
        # as a duplicate, so every committed task has its "learned" result at least once
        self.results.publish(result)
        self.source.ack(delivery)
        if delivery.published_at:
            latency = time.time() - delivery.published_at
            self.metrics.publish_to_learned.observe(max(0.0, latency))
            log.info("task %s: learned %.1f s after it was published", task.task_id, latency)

    # -- learning ------------------------------------------------------------------------
    def _phase(self, name: str, task_id: str) -> None:
        self.phase = name
        self.heartbeat = time.monotonic()
        if self._stop.is_set():
            raise Stopped(name)
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

    def learn(self, task: Task, delivery: Delivery) -> TaskResult:
        learner = self.learners[task.kind]
        timings: dict[str, float] = {}
        t = time.perf_counter()
        self._phase("recall", task.task_id)
        self.memory.forget_task(task.task_id)  # leftovers of an interrupted attempt / old version
        queries = self.memory.embedder.embed([e.input for e in task.train])
        init_from = self._choose_init(task, queries, learner)
        replay = self._recall(task, queries)
        t = self._timed("recall", timings, t)

        self._phase("train", task.task_id)
        outcome = learner.learn(task, replay, init_from, self._progress(task.task_id))
        t = self._timed("train", timings, t)
        self.metrics.train_examples.inc(outcome.train_examples)
        self.metrics.replay_examples.inc(outcome.replay_examples)

        self._phase("persist", task.task_id)
        adapter_dir = self.state.adapter_dir(task.task_id)
        learner.save_adapter(task.task_id, adapter_dir)
        self.state.save_task(task)
        self._remember(task, queries, outcome)
        t = self._timed("persist", timings, t)

        self._phase("evaluate", task.task_id)
        row = self._evaluate_all(task, outcome)
        self._timed("evaluate", timings, t)
        return self._commit(task, outcome, row, timings)

    def _commit(self, task: Task, outcome: LearnOutcome, row: dict[str, float],
                timings: dict[str, float]) -> TaskResult:
        adapter_dir = self.state.adapter_dir(task.task_id)
        previous = self.state.latest(task.task_id)
        version = previous.version + 1 if previous else 1
        entry = TaskEntry(
            task_id=task.task_id,
            column=task.task_id if version == 1 else f"{task.task_id}#v{version}",
            version=version, content_hash=task.content_hash, kind=task.kind,
            adapter=str(adapter_dir.relative_to(self.state.root)),
            zero_shot=outcome.zero_shot, initial=outcome.initial, final=outcome.final,
            init_from=outcome.init_from, steps=outcome.steps,
            train_examples=outcome.train_examples, replay_examples=outcome.replay_examples,
            seconds={**timings, **{f"learner_{k}": v for k, v in outcome.seconds.items()}},
            learned_at=time.time(),
        )
        self.state.record(entry, row)  # the commit point
        self.metrics.tasks_learned.inc()
        self.metrics.last_task_timestamp.set(time.time())
        self.refresh_gauges()
        summary = self.state.metrics().as_dict()
        log.info(
            "task %s: learned v%d: zero-shot %.3f, initial %.3f, final %.3f (init from %s, "
            "%d replayed) | ACC %.3f BWT %+.3f FWT %+.3f", task.task_id, version,
            outcome.zero_shot, outcome.initial, outcome.final, outcome.init_from,
            outcome.replay_examples, summary["acc"], summary["bwt"], summary["fwt"],
        )
        return TaskResult(
            task.task_id, "learned", task.content_hash, version,
            metrics={"zero_shot": outcome.zero_shot, "initial": outcome.initial,
                     "final": outcome.final, **summary},
            adapter_path=str(adapter_dir), timings=timings,
        )

    def _choose_init(self, task: Task, queries: Vectors, learner: Learner) -> str | None:
        if self.s.init == "fresh":
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

    def _remember(self, task: Task, queries: Vectors, outcome: LearnOutcome) -> None:
        info = TaskInfo(task.task_id, task.kind, task.instruction, task.labels, len(task.train))
        self.memory.register_task(info, queries)
        now = time.time()
        records = []
        for p in outcome.predictions:
            base = Record(task.task_id, p.input, p.target, "experience", p.split, p.prediction,
                          p.correct, p.loss, now)
            records.append(base)
            if not p.correct:
                records.append(Record(task.task_id, p.input, p.target, "error", p.split,
                                      p.prediction, False, p.loss, now))
        self.memory.add(records)
        self.memory.flush()

    def _evaluate_all(self, task: Task, outcome: LearnOutcome) -> dict[str, float]:
        """Score every seen task with its own adapter (the new one from `outcome`)."""
        row = {task.task_id: outcome.final}
        for task_id in self.state.task_ids():
            if task_id == task.task_id:
                continue
            self._phase("evaluate", task_id)
            seen = self.state.load_task(task_id)
            row[task_id] = self.learners[seen.kind].evaluate(seen, task_id)
        return row

    def status(self) -> dict[str, Any]:
        """For the HTTP thread: the live phase plus the last snapshot of the main loop."""
        return {"phase": self.phase, "current_task": self.current, **self._snapshot}
