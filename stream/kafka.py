"""Kafka source and sinks (kafka-python >= 3).

`KafkaTaskSource` keeps the `TaskSource` contract on a consumer group:

* One consumer thread owns the `KafkaConsumer` (it is not thread-safe) and calls `poll()`
  all the time, so the daemon stays in its group however long a task trains
  (`max_poll_interval_ms` counts time between polls). While a delivery is out, every
  assigned partition is paused, newly assigned ones too; a record that a poll still returns
  (from a partition assigned during that poll) waits in a one-record buffer, and is dropped
  if its partition is revoked before it is handed out (the new owner reads it again).
* Any error in that thread closes the consumer and connects again after a back-off. A
  delivery that is out stays out: its ack commits through the new consumer (same group),
  which then skips the record. Records not handed out are read again from the committed
  offsets. `healthy()` is False when the thread has stopped or has not reached the broker
  for `unhealthy_after_s`; `poll()` raises `SourceUnavailable` when the thread has stopped.
* Offsets are committed explicitly (`enable_auto_commit=False`), one record at a time, only
  when the daemon acknowledges the delivery, which it does after the task is durable.
* A commit that meets a rebalance in progress polls until the rebalance completes, then
  tries again. One whose partition went to another member (never committed then: that
  could move the new owner's offset back), or that cannot land in `delivery_timeout_s`
  (30 s at least), is counted and given up: the record comes again, and learning is
  idempotent by task id and content hash.
* `fail()` produces the original bytes to the dead-letter topic with the reason and the
  source topic/partition/offset as headers (a record too large to republish becomes a
  stub, see `kafka_dlq`), waits for the broker's ack, then commits. When the dead-letter
  topic cannot be written in `delivery_timeout_s` it raises `SourceUnavailable` and the
  delivery stays out: the daemon retries `fail()` later. `ack()` and `fail()` wait a
  bounded time and raise only `SourceUnavailable`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from synlearner.stream.base import Delivery, SourceListener
from synlearner.stream.config import StreamConfig
from synlearner.stream.errors import SourceUnavailable
from synlearner.stream.kafka_dlq import send_dead_letter
from synlearner.stream.kafka_io import (
    KafkaPublisher,
    KafkaResultSink,
    ProducerSlot,
    consumer_lag,
    group_consumer,
    partition_lag,
    producer,
)

__all__ = ["KafkaPublisher", "KafkaResultSink", "KafkaTaskSource", "consumer_lag"]

log = logging.getLogger(__name__)
MAX_LAG_PARTITIONS = 64  # lag is reported for at most this many partitions
HELD_POLL_MS = 50  # poll timeout while a task is out (bounds the delay of its ack)
MAX_BACKOFF_S = 30.0  # between reconnects of the consumer
REJOIN_POLL_MS = 1000  # a poll between commit retries, long enough to finish a join round
MIN_COMMIT_WAIT_S = 30.0  # a commit is retried this long at least (a rejoin after an outage)


class _NullListener:
    def on_event(self, event: str, value: float = 1.0, partition: str | None = None) -> None:
        pass


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Runs on the consumer's IO loop: only sets flags and counts."""

    def __init__(self, listener: SourceListener) -> None:
        self.listener = listener

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        log.info("kafka: partitions revoked: %s", sorted(f"{t.topic}/{t.partition}" for t in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("kafka: partitions assigned: %s",
                 sorted(f"{t.topic}/{t.partition}" for t in assigned))
        self.listener.on_event("rebalance")

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        log.warning("kafka: partitions lost: %s", sorted(f"{t.topic}/{t.partition}" for t in lost))


Command = tuple[str, Delivery, str, "Future[None]"]


class KafkaTaskSource:
    def __init__(self, stream: StreamConfig, listener: SourceListener | None = None) -> None:
        self.s = stream.kafka
        self.max_bytes = stream.limits.max_message_bytes
        self.listener = listener or _NullListener()
        self._deliveries: queue.Queue[Delivery] = queue.Queue(maxsize=1)
        self._commands: queue.Queue[Command] = queue.Queue()
        self._held: dict[str, tuple[TopicPartition, int, int]] = {}  # ref: tp, offset, generation
        self._buffer: list[tuple[TopicPartition, Any]] = []
        self._closing = threading.Event()
        self._wake = threading.Event()  # set when a command arrives
        self._pending = 0
        self._generation = 0  # one per consumer created
        self._beat = self._contact = time.monotonic()  # thread alive / broker reached
        self._dlq = ProducerSlot(lambda: producer(stream), self.s.delivery_timeout_s)
        self._consumer: KafkaConsumer | None = None
        self._thread = threading.Thread(target=self._run, name="kafka-consumer", daemon=True)
        self._thread.start()

    # -- the daemon's side (main thread) -------------------------------------------------
    def poll(self, timeout_s: float) -> Delivery | None:
        if not self._thread.is_alive() and not self._closing.is_set():
            raise SourceUnavailable("kafka: the consumer thread has stopped")
        try:
            return self._deliveries.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def healthy(self) -> bool:
        """False when the consumer thread has stopped, is stuck, or has not reached the broker
        for `unhealthy_after_s`."""
        now = time.monotonic()
        stuck_after = self.s.unhealthy_after_s + 2 * self.s.delivery_timeout_s
        return (self._thread.is_alive() and now - self._contact < self.s.unhealthy_after_s
                and now - self._beat < stuck_after)

    def _command(self, kind: str, delivery: Delivery, reason: str = "") -> None:
        if not self._thread.is_alive():
            raise SourceUnavailable(f"kafka: cannot {kind} {delivery.ref}: the consumer has stopped")
        done: Future[None] = Future()
        self._commands.put((kind, delivery, reason, done))
        self._wake.set()
        deadline = time.monotonic() + 2 * self.s.delivery_timeout_s + MIN_COMMIT_WAIT_S + 30
        while True:
            try:
                done.result(timeout=1.0)
                return
            except concurrent.futures.TimeoutError:
                if time.monotonic() >= deadline or not self._thread.is_alive():
                    done.cancel()
                    raise SourceUnavailable(f"kafka: {kind} of {delivery.ref} did not complete "
                                            "in time") from None
            except SourceUnavailable:
                raise
            except Exception as exc:
                raise SourceUnavailable(f"kafka: {kind} of {delivery.ref} failed: {exc!r}") from exc

    def ack(self, delivery: Delivery) -> None:
        self._command("ack", delivery)

    def fail(self, delivery: Delivery, reason: str) -> None:
        self._command("fail", delivery, reason)

    def pending(self) -> int:  # behind the group's position on assigned partitions (last view)
        return self._pending

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:  # the consumer thread
        backoff = 1.0
        try:
            while not self._closing.is_set():
                started = time.monotonic()
                consumer: KafkaConsumer | None = None
                try:
                    consumer = self._connect()
                    if consumer is None:
                        break
                    self._loop(consumer)
                except Exception as exc:  # noqa: BLE001  # any failure: connect again
                    log.error("kafka: consumer failed (%r); reconnecting in %.0f s", exc, backoff,
                              exc_info=not isinstance(exc, KafkaError))
                    self.listener.on_event("reconnect")
                finally:
                    self._consumer = None
                    self._buffer.clear()  # read again from the committed offsets
                    if consumer is not None:
                        _close_quietly(consumer)
                if time.monotonic() - started > 60:
                    backoff = 1.0
                self._idle(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        finally:
            self._reject_commands("the consumer has stopped")
            self._dlq.close()

    def _idle(self, seconds: float) -> None:
        """Wait without a consumer, answering commands that need one."""
        deadline = time.monotonic() + seconds
        while not self._closing.is_set() and time.monotonic() < deadline:
            self._beat = time.monotonic()
            self._reject_commands("not connected to the broker")
            self._wake.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            self._wake.clear()

    def _connect(self) -> KafkaConsumer | None:
        consumer = group_consumer(self.s, self.max_bytes)
        try:
            # know the topic's partitions before joining: a group leader without them
            # hands out an empty assignment
            while not consumer.partitions_for_topic(self.s.topic):
                log.warning("kafka: topic %s has no partitions yet; waiting", self.s.topic)
                self._idle(2.0)
                if self._closing.is_set():
                    _close_quietly(consumer)
                    return None
            consumer.subscribe([self.s.topic], listener=_Rebalances(self.listener))
        except BaseException:
            _close_quietly(consumer)
            raise
        self._generation += 1
        self._contact = time.monotonic()
        self._consumer = consumer
        return consumer

    def _loop(self, consumer: KafkaConsumer) -> None:
        last_lag = 0.0
        lag_every = min(5.0, self.s.unhealthy_after_s / 3)
        while not self._closing.is_set():
            self._beat = time.monotonic()
            self._run_commands(consumer)
            assigned = consumer.assignment()
            self._buffer = [(tp, rec) for tp, rec in self._buffer if tp in assigned]
            if not self._held and self._buffer:
                self._hand_out(consumer, *self._buffer.pop(0))
            if self._held or self._buffer:
                consumer.pause(*assigned)
                # a task is out: wait for its ack rather than for records; a short poll
                # each time keeps the group membership
                if self._wake.wait(self.s.poll_timeout_ms / 1000):
                    self._wake.clear()
                    if not self._commands.empty():
                        continue  # the ack first: it releases the partitions
                timeout_ms = HELD_POLL_MS  # not 0: a zero-timeout poll skips group work
            else:
                consumer.resume(*assigned)
                timeout_ms = self.s.poll_timeout_ms
            batches = consumer.poll(timeout_ms=timeout_ms, max_records=1)
            _release_parked_records(consumer)
            for tp, records in batches.items():
                for rec in records:
                    if self._held:  # from a partition assigned during this poll
                        self._buffer.append((tp, rec))
                        consumer.pause(tp)
                    else:
                        self._hand_out(consumer, tp, rec)
            if time.monotonic() - last_lag > lag_every:
                last_lag = time.monotonic()
                self._report_lag(consumer)
        self._run_commands(consumer)

    def _hand_out(self, consumer: KafkaConsumer, tp: TopicPartition, rec: Any) -> None:
        ref = f"{tp.topic}/{tp.partition}/{rec.offset}"
        self._held[ref] = (tp, rec.offset, self._generation)
        consumer.pause(*consumer.assignment())
        self.listener.on_event("consumed")
        attrs = {"topic": tp.topic, "partition": str(tp.partition), "offset": str(rec.offset)}
        if rec.key is not None:
            attrs["key"] = rec.key.decode("utf-8", "replace")
        published = rec.timestamp / 1000 if rec.timestamp and rec.timestamp > 0 else 0.0
        self._deliveries.put(Delivery(raw=rec.value or b"", ref=ref, published_at=published,
                                      attrs=attrs))

    def _next_command(self) -> Command | None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return None
            if command[3].set_running_or_notify_cancel():  # False: the caller gave up
                return command

    def _reject_commands(self, why: str) -> None:
        while (command := self._next_command()) is not None:
            command[3].set_exception(SourceUnavailable(f"kafka: {why}"))

    def _run_commands(self, consumer: KafkaConsumer) -> None:
        while (command := self._next_command()) is not None:
            kind, delivery, reason, done = command
            try:
                if delivery.ref not in self._held:  # a retry of one that got through
                    log.info("kafka: %s of %s: already released", kind, delivery.ref)
                else:
                    if kind == "fail":
                        self._dead_letter(delivery, reason)
                    self._commit(consumer, delivery)
                done.set_result(None)
            except Exception as exc:  # noqa: BLE001  # handed to the waiting caller
                done.set_exception(exc)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        send_dead_letter(self._dlq, self.s.dead_letter_topic, delivery, reason)
        self.listener.on_event("dead_lettered")

    def _commit(self, consumer: KafkaConsumer, delivery: Delivery) -> None:
        tp, offset, generation = self._held.pop(delivery.ref)
        earlier = generation != self._generation  # handed out by a consumer since replaced
        deadline = time.monotonic() + max(self.s.delivery_timeout_s, MIN_COMMIT_WAIT_S)
        while True:
            assigned = consumer.assignment()
            if assigned and tp not in assigned:
                # the group gave the partition to another member, which reads it from the
                # committed offset; committing now could move that member's offset back
                log.warning("kafka: %s moved to another member before its commit; the task will "
                            "be redelivered there and recognised as learned", delivery.ref)
                self.listener.on_event("commit_failed")
                return
            try:
                consumer.commit({tp: OffsetAndMetadata(offset + 1, "", -1)})
                self.listener.on_event("committed")
                if earlier and tp in consumer.assignment():
                    # this consumer started at the committed offset: skip the acked record
                    self._buffer = [(t, rec) for t, rec in self._buffer if t != tp]
                    consumer.seek(tp, offset + 1)
                return
            except KafkaError as exc:
                self.listener.on_event("commit_failed")
                if isinstance(exc, CommitFailedError) and not earlier:
                    # the partition moved: the new owner redelivers
                    log.warning("kafka: commit of %s failed after a rebalance (%s); the task will "
                                "be redelivered and recognised as learned", delivery.ref, exc)
                    return
                if time.monotonic() >= deadline:  # durable anyway: a redelivery is a duplicate
                    log.error("kafka: giving up committing %s (%s); it will be redelivered and "
                              "acknowledged as a duplicate", delivery.ref, exc)
                    return
                # a rebalance in progress (or a consumer not yet in the group) is completed by
                # polling; the commit is tried again once it has been
                log.warning("kafka: commit of %s failed (%s); completing the group's rebalance "
                            "and retrying", delivery.ref, exc)
                self._keep_membership(consumer, REJOIN_POLL_MS)
                time.sleep(0.2)  # a poll that returns at once (no coordinator yet) is no wait

    def _keep_membership(self, consumer: KafkaConsumer, timeout_ms: int) -> None:
        self._buffer.extend(_poll_paused(consumer, timeout_ms))
        self._beat = time.monotonic()

    def _report_lag(self, consumer: KafkaConsumer) -> None:
        """Lag per assigned partition; a successful round trip also counts as broker contact."""
        lags = partition_lag(consumer, self.s.topic)
        if lags is None:
            return
        self._contact = time.monotonic()
        log.debug("kafka: held %s, buffered %d, lag %s", list(self._held), len(self._buffer), lags)
        for tp, lag in lags.items():
            if tp.partition < MAX_LAG_PARTITIONS:
                self.listener.on_event("lag", lag, f"{tp.topic}/{tp.partition}")
        self._pending = sum(lags.values())


def _poll_paused(consumer: KafkaConsumer, timeout_ms: int) -> list[tuple[TopicPartition, Any]]:
    """Poll to keep (or get) the group membership; what it returns is paused, to wait."""
    out: list[tuple[TopicPartition, Any]] = []
    for part, records in consumer.poll(timeout_ms=timeout_ms, max_records=1).items():
        out.extend((part, rec) for rec in records)
        consumer.pause(part)
    _release_parked_records(consumer)
    return out


def _close_quietly(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False, timeout_ms=5000)
    except Exception as exc:  # noqa: BLE001  # closing is best effort
        log.warning("kafka: closing the consumer failed: %r", exc)


def _release_parked_records(consumer: KafkaConsumer) -> None:
    """Work around a kafka-python 3.0 fetcher stall.

    Records fetched for a partition that is then paused are parked, and given back on
    resume only when the fetcher's in-line record slot is `None`; a drained slot stays an
    empty (falsy) object instead, so a partition paused with parked records is never
    fetched again. Emptying the drained slot lets the parked records flow on resume.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current:
        fetcher._next_partition_records = None  # type: ignore[union-attr]  # checked above
