"""Interfaces of the stream package.

Contract every `TaskSource` keeps (the contract tests in `tests/unit/test_stream_contract.py`
run it over each implementation):

* `poll(timeout_s)` hands out at most one `Delivery`, or `None` when nothing arrived in time.
  A delivery stays claimed until it is `ack`ed or `fail`ed; a delivery neither acked nor
  failed when the process dies is handed out again after a restart (at-least-once).
* `ack(delivery)` is called only after everything the task produced is durable.
* `fail(delivery, reason)` dead-letters the message with its original bytes and the reason,
  then releases it: it is never handed out again.
* `close()` releases resources; unacknowledged deliveries stay pending.
* Any call may raise `SourceUnavailable` (errors.py) when the stream itself is down; the
  caller backs off and retries the same call, and the message is not at fault.

A `ResultSink` receives one `TaskResult` per consumed message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from synlearner.stream.schema import TaskResult


@dataclass(frozen=True)
class Delivery:
    """One message handed out by a source.

    `ref` is stable across restarts for the same message (a spool file name, a Kafka
    "topic/partition/offset"), so attempts at it can be counted durably. `rejected` is set
    when the source could not even read the message (not a regular file, ...): it is
    dead-lettered with that reason.
    """

    raw: bytes
    ref: str  # source-specific handle: a file name, "topic/partition/offset", ...
    published_at: float = 0.0  # seconds since the epoch when the producer sent it (0: unknown)
    attrs: dict[str, str] = field(default_factory=dict)
    rejected: str = ""


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message as `synlearner dead-letters list` shows it."""

    id: str  # what `requeue` takes: a spool file name, or the dead-letter record's topic/partition/offset
    reason: str
    when: float  # seconds since the epoch
    attempts: int = 0  # times it was taken up (0: unknown)
    source: str = ""  # where it came from (the Kafka record's topic/partition/offset)
    requeued: bool = False
    stub: bool = False  # only a stub was kept (the record was too large to republish)


@runtime_checkable
class TaskSource(Protocol):
    def poll(self, timeout_s: float) -> Delivery | None: ...

    def ack(self, delivery: Delivery) -> None: ...

    def fail(self, delivery: Delivery, reason: str) -> None: ...

    def pending(self) -> int:
        """Messages waiting (not yet handed out), as far as the source can tell."""
        ...

    def healthy(self) -> bool:
        """False when the source can no longer hand out messages (e.g. its thread died)."""
        ...

    def close(self) -> None: ...


class SourceListener(Protocol):
    """Receives a source's operational events (the daemon turns them into metrics).

    Events: "consumed", "committed", "commit_failed", "dead_lettered", "rebalance"
    (value 1 each), and "lag" (value = messages behind, with the partition's name). It may
    be called from a source's own thread.
    """

    def on_event(self, event: str, value: float = 1.0, partition: str | None = None) -> None: ...


@runtime_checkable
class ResultSink(Protocol):
    def publish(self, result: TaskResult) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class TaskPublisher(Protocol):
    """What `synlearner submit` uses: put one raw task message on the stream."""

    def submit(self, raw: bytes, key: str) -> str: ...

    def close(self) -> None: ...
