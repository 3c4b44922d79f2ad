"""Settling deliveries: every message ends learned, duplicate or dead-lettered, exactly once.

`Settler` is the loop's only way to talk back to the stream. It

* counts attempts durably (`Attempts`) and quarantines a message that was taken up more
  than `max_attempts` times without being settled (it crashed the process each time);
* dead-letters with a reason and a code (counted by code on `/metrics`);
* publishes the result before acknowledging (a crash in between redelivers the task,
  which is then recognised as a duplicate);
* holds on failures that are not the message's fault (`is_transient`: a broker or
  dead-letter topic down, a full disk, too many open files, a database locked by another
  process): it backs off, says so in the log, on `/metrics` (`synlearner_stream_held`) and
  `/readyz`, and retries the same call until it works, the daemon is asked to stop, or an
  operator parks the held message (`synlearner dead-letters park`). Such a failure never
  dead-letters a good task and never counts as an attempt.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from synlearner.daemon.attempts import FLOOR, Attempts
from synlearner.daemon.metrics import Metrics
from synlearner.stream.base import Delivery, ResultSink, TaskSource
from synlearner.stream.boundary import describe, is_transient
from synlearner.stream.errors import DeadLetterCode
from synlearner.stream.schema import TaskResult

log = logging.getLogger("synlearner.daemon")
T = TypeVar("T")


class Stopped(Exception):
    """Raised inside long work when a stop was requested; the task stays unacknowledged."""


class Parked(Exception):
    """Raised while holding a message's learning when an operator asked to move it aside."""


class Settler:
    def __init__(self, source: TaskSource, results: ResultSink, attempts: Attempts,
                 metrics: Metrics, stop: threading.Event, max_attempts: int,
                 backoff_max_s: float, on_wait: Callable[[str], None] | None = None) -> None:
        self.source = source
        self.results = results
        self.attempts = attempts
        self.metrics = metrics
        self.stop = stop
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        self.on_wait = on_wait or (lambda _what: None)  # keeps the heartbeat while holding
        self.held = False  # holding on a failure now (until the held call works or ends)
        self.fault = ""  # the failure the current hold waits out

    # -- holding on transient failures ---------------------------------------------------
    def hold(self, what: str, exc: BaseException, failures: int) -> None:
        """Wait before retry number `failures` of `what`; raise `Stopped` on a stop request."""
        delay = min(self.backoff_max_s, 0.5 * 2 ** min(failures - 1, 16))
        log.warning("%s: %s is not the message's fault; holding the stream, retry %d in %.1f s",
                    what, describe(exc), failures, delay)
        self.metrics.backoffs.labels(operation=what).inc()
        self.held, self.fault = True, describe(exc)
        self.metrics.stream_held.set(1)
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            self.on_wait(what)
            if self.stop.wait(min(left, 1.0)):
                raise Stopped(f"holding {what}")

    def unheld(self) -> None:
        """The held call ended (it worked, or it was settled otherwise)."""
        if self.held:
            self.held, self.fault = False, ""
            self.metrics.stream_held.set(0)

    def retry(self, what: str, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)`, retried with back-off for as long as it fails transiently."""
        failures = 0
        try:
            while True:
                try:
                    return fn(*args)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    failures += 1
                    self.hold(what, exc, failures)
        finally:
            if failures:
                self.unheld()

    # -- attempts ------------------------------------------------------------------------
    def begin(self, delivery: Delivery) -> bool:
        """Count an attempt; False (and dead-lettered) when the message is quarantined: the
        attempts before this one died `max_attempts` times in a row at the same point."""
        attempt = self.attempts.begin(delivery.ref)
        if attempt.same < self.max_attempts and attempt.number <= FLOOR * self.max_attempts:
            if attempt.number > 1:
                log.warning("message %r: taken up again (attempt %d; the last one died in %s)",
                            delivery.ref, attempt.number, attempt.last or "no noted point")
            return True
        last = attempt.last or "no phase recorded"
        if attempt.same >= self.max_attempts:
            reason = f"crashed {attempt.same} times at the same point: last in {last}"
        else:
            reason = f"crashed {attempt.number - 1} times at different points: last in {last}"
        log.error("message %r: %s; quarantined", delivery.ref, reason)
        self.dead_letter(delivery, reason, "crashed", None, attempts=attempt.number - 1)
        return False

    def note(self, delivery: Delivery | None, text: str) -> None:
        if delivery is not None:
            self.attempts.note(delivery.ref, text)

    def release(self, delivery: Delivery) -> None:
        """A requested stop ended the attempt: not the message's fault, not counted."""
        self.attempts.undo(delivery.ref)

    # -- the three endings ---------------------------------------------------------------
    def dead_letter(self, delivery: Delivery, reason: str, code: DeadLetterCode,
                    task_id: str | None, status: Literal["invalid", "failed"] = "invalid",
                    content_hash: str = "", attempts: int | None = None) -> None:
        log.warning("dead letter %r (%s): %s", delivery.ref, code, reason)
        tries = self.attempts.count(delivery.ref) if attempts is None else attempts
        attrs = {**delivery.attrs, "attempts": str(tries)}
        # the result first, as for learned tasks: a crash in between dead-letters it again
        self._publish(TaskResult(task_id or "", status, content_hash, error=reason))
        self.retry("dead-letter", self.source.fail, dataclasses.replace(delivery, attrs=attrs),
                   reason)
        self.attempts.clear(delivery.ref)
        self.metrics.dead_letters.labels(reason=code).inc()
        if status == "failed":
            self.metrics.tasks_failed.inc()
        else:
            self.metrics.tasks_dead_lettered.inc()

    def acknowledge(self, delivery: Delivery, result: TaskResult) -> None:
        """Publish `result`, then acknowledge (learned or duplicate)."""
        self._publish(result)
        self.retry("ack", self.source.ack, delivery)
        self.attempts.clear(delivery.ref)

    def _publish(self, result: TaskResult) -> None:
        self.retry("publish", self.results.publish, result)
