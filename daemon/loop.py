"""The service loop: poll → settle each message (learned, duplicate or dead letter) → stop.

One task at a time, on the calling thread. Learning a task is the runner's (runner.py,
phases.py); this module only takes messages from the stream, decodes them at the
boundary, asks the runner to learn the new ones, and settles each through the `Settler`
(publish the result, then acknowledge). A task is committed (one transaction in
state.sqlite3) only after everything it produced is durable, so a crash at any point
redelivers it, and a redelivered task that is already committed is acknowledged without
training (idempotent by task id and content hash).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from synlearner.daemon.agnostic import TaskAgnostic
from synlearner.daemon.attempts import Attempts
from synlearner.daemon.config import Config, live_update
from synlearner.daemon.jobs import IDLE_ONLY, run_job
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.park import take_park_request
from synlearner.daemon.phases import (
    PHASES,
    commit,
    consolidate_idle,
    learned_result,
)
from synlearner.daemon.references import check_references
from synlearner.daemon.restore import restore, restore_committed
from synlearner.daemon.runner import Context, Runner
from synlearner.daemon.settle import Parked, Settler, Stopped
from synlearner.daemon.state import State
from synlearner.daemon.strategies import Joint, build_strategy
from synlearner.learner.base import Learner, Progress
from synlearner.learner.methods import unknown_methods
from synlearner.memory.base import Memory
from synlearner.stream.base import Delivery, ResultSink, TaskSource
from synlearner.stream.boundary import decode, describe, is_out_of_memory, is_transient
from synlearner.stream.errors import DeadLetterCode, InvalidTask
from synlearner.stream.schema import Task, TaskResult

log = logging.getLogger("synlearner.daemon")
# the holds an operator may end by parking the message held (`park.py`): those of its
# decoding and learning, up to its commit (not its acknowledgement: it is learned by then)
PARKABLE = frozenset({"decode", "learn", "persist", "commit"})
__all__ = ["Daemon", "Stopped"]


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def release_freed_memory() -> None:
    """Hand the heap pages freed by a task's work back to the system (glibc keeps them:
    training and scoring allocate tensors of every padded length, so without this the
    process grows by hundreds of MB per task that it never uses again)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class Daemon:
    def __init__(self, cfg: Config, source: TaskSource, results: ResultSink, memory: Memory,
                 learners: Mapping[str, Learner], state: State, metrics: Metrics,
                 attempts: Attempts | None = None) -> None:
        self.cfg = cfg
        self.source = source
        self.results = results
        self.memory = memory
        self.learners = dict(learners)
        self.state = state
        self.metrics = metrics
        # set from signal handlers and the scheduler: a plain flag, never a lock (a handler
        # runs on the main thread, between any two of its bytecodes, perhaps inside a lock)
        self.gauges_due = False
        self.reload_due = False  # SIGHUP: read the config again (`config_loader`)
        self.config_loader: Callable[[], Config] | None = None
        self.jobs_due: set[str] = set()  # scheduled jobs queued for the main loop (jobs.py)
        self.job_results: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self.settler = Settler(source, results, attempts or Attempts(state.root / "attempts"),
                               metrics, self._stop, cfg.stream.max_attempts,
                               cfg.stream.backoff_max_s, on_wait=self._holding)
        self._delivery: Delivery | None = None  # the message being worked on
        self.heartbeat = time.monotonic()
        self.phase = "starting"
        self.current: str | None = None
        self._snapshot: dict[str, Any] = {}
        self._idle_failed = -1  # the event count at which the idle work last failed
        self.strategy = build_strategy(cfg.learner.adapters)
        self.ctx = Context(cfg, memory, self.learners, state, metrics, self.strategy,
                           TaskAgnostic(cfg.learner.consolidate, memory, self.learners, state,
                                        lambda t: self.ctx.answer_key(t),
                                        lambda t, key: self.ctx.scores.get((t, key))),
                           beat=self._phase, progress=self._progress,
                           retry=self.settler.retry)
        self.runner = Runner(self.ctx, PHASES, commit)
        state.keep_versions = cfg.daemon.jobs.adapter_versions
        restore(self.ctx)
        self.refresh_gauges()

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Run until `stop()` (or, with `daemon.drain`, until the stream is empty)."""
        log.info("daemon: running (%d tasks learned so far; phases %s)", len(self.state.entries),
                 " → ".join(self.runner.names))
        try:
            self._publish_outbox()
        except Stopped:
            self.phase = "stopped"
            return
        if isinstance(self.strategy, Joint):
            self._run_joint(self.strategy)
            self.phase = "stopped"
            return
        while not self._stop.is_set():
            delivery = self._next()
            if delivery is None:
                self._idle()
                if self.cfg.daemon.drain and self.source.pending() == 0:
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

    def _next(self) -> Delivery | None:
        self._run_jobs()
        self.phase = "idle"
        self.heartbeat = time.monotonic()
        try:
            return self.settler.retry("poll", self.source.poll, self.cfg.stream.poll_timeout_s)
        except Stopped:
            return None

    def _idle(self) -> None:
        """Work that waits for a quiet stream: the task-agnostic merge and scores. A failure
        is logged and not retried until another task is learned (it never stops the loop)."""
        events = len(self.state.entries)
        if self.source.pending() > 0 or self._idle_failed == events:
            return
        try:
            if consolidate_idle(self.ctx):
                release_freed_memory()
                self.refresh_gauges()
        except Stopped:
            log.info("daemon: stopped during the idle merge; it runs again when next idle")
        except Exception:  # noqa: BLE001  # the stream goes on; the next task tries again
            log.exception("idle: the task-agnostic merge failed")
            self._idle_failed = events
        finally:
            self.phase = "idle"

    def _run_joint(self, strategy: Joint) -> None:
        """The multitask bound: take every task of the stream, then learn them all at once."""
        batch: dict[str, tuple[Task, list[Delivery]]] = {}
        while not self._stop.is_set():
            delivery = self._next()
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
            entries = strategy.learn_all([task for task, _ in batch.values()], self.ctx)
        except Stopped:
            log.info("daemon: stopped during joint learning; the tasks will be redelivered")
            return
        self.refresh_gauges()
        for entry, (task, deliveries) in zip(entries, batch.values(), strict=True):
            self.metrics.tasks_learned.inc()
            result = learned_result(task, entry, self.state.root, self.state.metrics().as_dict())
            for delivery in deliveries:
                self._publish(result, delivery)

    def _run_jobs(self) -> None:
        if self.reload_due:
            self.reload_due = False
            self.reload_config()
        for name in sorted(self.jobs_due):
            if name in IDLE_ONLY and self.source.pending() > 0:
                continue  # waits for a quiet stream
            self.jobs_due.discard(name)
            self.run_job(name)
        if self.gauges_due:  # however many were asked for while a task trained: one refresh
            self.gauges_due = False
            self.refresh_gauges()

    def run_job(self, name: str) -> None:
        """Run one scheduled job now (jobs.py: never raises)."""
        try:
            self.job_results[name] = run_job(name, self.ctx, self.metrics)
        finally:
            self.phase = "idle"
        release_freed_memory()

    def reload_config(self) -> None:
        """Read the config again (SIGHUP) and apply what can change while running; a change
        to any other setting is refused and named in the log (the running value stays)."""
        if self.config_loader is None:
            return
        try:  # a file gone, unreadable or invalid: logged, and nothing changes
            loaded = self.config_loader()
            cfg, applied, refused = live_update(self.cfg, loaded)
        except Exception as exc:  # noqa: BLE001  # whatever the file holds, the daemon goes on
            log.error("config reload: %s; the running config stays", describe(exc))
            self.metrics.config_reloads.labels(outcome="invalid").inc()
            return
        for key in refused:
            log.warning("config reload: %s changed but is read only at start; restart to "
                        "apply it (the running value stays)", key)
        if applied:
            self.apply_config(cfg)
            log.info("config reload: applied %s", ", ".join(applied))
        elif not refused:
            log.info("config reload: nothing changed")
        self.metrics.config_reloads.labels(
            outcome="refused" if refused else "applied" if applied else "unchanged").inc()

    def apply_config(self, cfg: Config) -> None:
        self.cfg = self.ctx.cfg = cfg
        self.state.keep_versions = cfg.daemon.jobs.adapter_versions
        self.settler.max_attempts = cfg.stream.max_attempts
        self.settler.backoff_max_s = cfg.stream.backoff_max_s
        logging.getLogger().setLevel(cfg.daemon.log_level)

    def _holding(self, what: str) -> None:
        """Backing off a transient failure is a deliberate wait, not a stall; while a
        message's decoding or learning holds, an operator may park it (`park.py`)."""
        self.phase = f"holding ({what})"
        self.heartbeat = time.monotonic()
        if (what in PARKABLE and self._delivery is not None
                and take_park_request(self.state.root, self.current)):
            raise Parked(self.settler.fault or what)

    @property
    def held(self) -> bool:
        """Holding the stream on a failure now (`/readyz` says not ready)."""
        return self.settler.held

    def refresh_gauges(self) -> None:
        """Update gauges and the status snapshot (main thread only: it reads SQLite)."""
        counts = self.memory.counts()
        pending = self.source.pending()
        transfer = self.state.metrics().as_dict() if self.state.entries else {}
        latest = self.state.latest_scores()
        self.metrics.set_memory(counts)
        self.metrics.stream_pending.set(pending)
        self.metrics.adapters_missing.set(len(self.ctx.missing))
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
        task = None
        try:
            task = self._accept(delivery)
            if task is not None:
                self._learn_settled(task, delivery)
        except Parked as parked:
            log.warning("message %r: parked by an operator while holding", delivery.ref)
            self.settler.unheld()
            self.settler.dead_letter(
                delivery, f"parked by an operator while holding: {parked}", "parked",
                task.task_id if task else None, "failed" if task else "invalid",
                task.content_hash if task else "")
        finally:
            self._delivery = None

    def _learn_settled(self, task: Task, delivery: Delivery) -> None:
        """Learn `task` and settle its delivery. A resource fault (`is_transient`) holds the
        stream and retries without counting; running out of memory is retried
        `stream.max_attempts` times and then counted against the task (dead letter); any
        other failure dead-letters it. A task that reached its commit point is learned,
        whatever happens after it."""
        self.current = task.task_id
        self.metrics.busy.set(1)
        event, failures, oom = self.state.next_event, 0, 0
        try:
            while True:
                try:
                    run = self.runner.learn(task)
                    release_freed_memory()
                    self.refresh_gauges()
                    break
                except Stopped:
                    raise
                except Parked:  # an operator moved it aside while it held
                    restore_committed(self.ctx, task)
                    raise
                except Exception as exc:
                    if self.state.next_event > event:  # committed: what failed came after
                        log.exception("task %s: failed after its commit point", task.task_id)
                        self._publish_committed(event, delivery)
                        return
                    restore_committed(self.ctx, task)
                    if is_transient(exc) or (is_out_of_memory(exc)
                                             and oom < self.cfg.stream.max_attempts - 1):
                        oom += is_out_of_memory(exc)
                        failures += 1
                        self.settler.hold("learn", exc, failures)  # may raise Parked
                        continue
                    log.exception("task %s: failed", task.task_id)
                    code: DeadLetterCode = "learning_failed"
                    reason = f"learning failed: {describe(exc)}"
                    if is_out_of_memory(exc):
                        code, reason = "out_of_memory", f"out of memory on {oom + 1} tries: {describe(exc)}"
                    self.settler.dead_letter(delivery, reason, code, task.task_id, "failed",
                                             task.content_hash)
                    return
        finally:
            self.settler.unheld()
            self.current = None
            self.metrics.busy.set(0)
        assert run.result is not None
        self._publish(run.result, delivery)
        self._published(run.event)

    def _published(self, event: int) -> None:
        try:
            self.state.published(event)
        except Exception:  # noqa: BLE001  # published again on the next start: at least once
            log.exception("state: could not drop the published result of event %d", event)

    def _publish_committed(self, event: int, delivery: Delivery) -> None:
        """Settle a delivery whose task committed as `event` with the result committed with it."""
        body = dict(self.state.unpublished()).get(event)
        if body is None:  # published already
            self.settler.retry("ack", self.source.ack, delivery)
            self.settler.attempts.clear(delivery.ref)
            return
        self._publish(TaskResult.from_json(body), delivery)
        self._published(event)

    def _publish_outbox(self) -> None:
        """On start: publish the results committed before a crash and not yet published
        (their redelivered messages are then acknowledged as duplicates)."""
        for event, body in self.state.unpublished():
            result = TaskResult.from_json(body)
            log.info("task %s: publishing its learned result (committed before the last stop)",
                     result.task_id)
            self.settler.retry("publish", self.results.publish, result)
            self._published(event)

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
            task = self.settler.retry("decode", decode, delivery.raw, self.cfg.stream.limits)
            if task.kind not in self.learners:
                raise InvalidTask(f"kind: no learner for {task.kind!r} tasks is configured",
                                  task.task_id, code="unsupported")
            if unknown := unknown_methods(task.kind, task.methods):
                raise InvalidTask(f"methods: {unknown[0]}", task.task_id, code="unsupported")
            try:
                self.learners[task.kind].check(task)
            except ValueError as exc:
                raise InvalidTask(str(exc), task.task_id, code="unsupported") from None
            check_references(self.state, task)
        except InvalidTask as exc:
            self.settler.dead_letter(delivery, exc.reason, exc.code, exc.task_id)
            return None
        self.metrics.task_duration.labels(phase="validate").observe(time.perf_counter() - t0)
        if self.state.answer_key(task.task_id) in self.ctx.missing:
            log.warning("task %s: learning it again (its committed adapter is missing)",
                        task.task_id)
        elif self.state.is_learned(task.task_id, task.content_hash):
            entry = self.state.latest(task.task_id)
            log.info("task %s: already learned (hash %s), acknowledging", task.task_id,
                     task.content_hash)
            self.settler.acknowledge(delivery, TaskResult(
                task.task_id, "duplicate", task.content_hash, entry.version if entry else 0,
                adapter_path=str(self.state.root / entry.adapter) if entry else ""))
            self.metrics.tasks_duplicate.inc()
            return None
        if task.truncated:
            log.warning("task %s: cut to fit stream.limits (on_oversize=truncate): %s",
                        task.task_id, ", ".join(f"{k} {v}" for k, v in task.truncated.items()))
            for what, n in task.truncated.items():
                self.metrics.input_truncated.labels(what=what).inc(n)
        return task

    # -- reporting -----------------------------------------------------------------------
    def _phase(self, name: str, task_id: str) -> None:
        self.phase = name
        self.heartbeat = time.monotonic()
        if self._stop.is_set():
            raise Stopped(name)
        self.settler.note(self._delivery, f"phase {name} of task {task_id}")
        log.info("task %s: %s", task_id, name)

    def _progress(self, task_id: str) -> Progress:
        every = self.cfg.daemon.progress_every_steps

        def report(phase: str, step: int, total: int, loss: float) -> None:
            self.heartbeat = time.monotonic()
            # where an attempt is, step by step: one that dies here again counts (attempts.py)
            self.settler.note(self._delivery, f"{phase} step {step}/{total} of task {task_id}")
            self.metrics.train_steps.inc()
            self.metrics.train_loss.set(loss)
            if step % every == 0 or step == total:
                log.info("task %s: %s step %d/%d loss %.4f", task_id, phase, step, total, loss)
            if self._stop.is_set():
                raise Stopped(f"{phase} step {step}")

        return report

    def status(self) -> dict[str, Any]:
        """For the HTTP thread: the live phase plus the last snapshot of the main loop."""
        return {"phase": self.phase, "current_task": self.current, **self._snapshot,
                "jobs": dict(self.job_results)}
