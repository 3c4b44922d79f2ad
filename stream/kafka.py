"""Kafka source and sinks (kafka-python >= 3).

`KafkaTaskSource` keeps the `TaskSource` contract on a consumer group:

* One consumer thread owns the `KafkaConsumer` (it is not thread-safe) and calls `poll()`
  all the time, so the daemon stays in its group however long a task trains
  (`max_poll_interval_ms` counts time between polls). While a delivery is out, every
  assigned partition is paused, newly assigned ones too; a record that a poll still returns
  (from a partition assigned during that poll) waits in a one-record buffer, and is dropped
  if its partition is revoked before it is handed out (the new owner reads it again).
* Offsets are committed explicitly (`enable_auto_commit=False`), one record at a time, only
  when the daemon acknowledges the delivery, which it does after the task is durable.
* A commit that fails because the partition moved to another member (rebalance) is
  counted and given up: the new owner gets the record again, and learning is idempotent
  by task id and content hash.
* `fail()` produces the original bytes to the dead-letter topic with the reason and the
  source topic/partition/offset as headers, waits for the broker's ack, then commits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from synlearner.stream.base import Delivery, SourceListener
from synlearner.stream.schema import TaskResult

log = logging.getLogger(__name__)
MAX_LAG_PARTITIONS = 64  # lag is reported for at most this many partitions
HELD_POLL_MS = 50  # poll timeout while a task is out (bounds the delay of its ack)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: tuple[str, ...]
    topic: str
    group_id: str
    results_topic: str
    dead_letter_topic: str
    client_id: str = "synlearner"
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 45_000
    poll_timeout_ms: int = 200
    max_message_bytes: int = 4 * 1024 * 1024
    delivery_timeout_s: float = 120.0
    security: dict[str, Any] = field(default_factory=dict)  # security_protocol, sasl_*, ssl_*

    def common(self) -> dict[str, Any]:
        return {"bootstrap_servers": list(self.bootstrap_servers), "client_id": self.client_id,
                **{k: v for k, v in self.security.items() if v is not None}}

    def producer(self) -> KafkaProducer:
        return KafkaProducer(
            **self.common(), acks="all", enable_idempotence=True, linger_ms=0,
            max_request_size=self.max_message_bytes + 64 * 1024,
            delivery_timeout_ms=int(self.delivery_timeout_s * 1000),
        )


class _NullListener:
    def on_event(self, event: str, value: float = 1.0, partition: str | None = None) -> None:
        pass


def _send(producer: KafkaProducer, timeout_s: float, topic: str, value: bytes, key: bytes | None,
          headers: list[tuple[str, bytes]] | None = None) -> str:
    """Produce one record and wait for the broker's ack, retrying through outages."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            meta = producer.send(topic, value=value, key=key, headers=headers).get(
                timeout=max(1.0, deadline - time.monotonic()))
            return f"{meta.topic}/{meta.partition}/{meta.offset}"
        except KafkaError as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("kafka: producing to %s failed (%s); retrying", topic, exc)
            time.sleep(1.0)


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


class KafkaTaskSource:
    def __init__(self, settings: KafkaSettings, listener: SourceListener | None = None) -> None:
        self.s = settings
        self.listener = listener or _NullListener()
        self._deliveries: queue.Queue[Delivery] = queue.Queue(maxsize=1)
        self._commands: queue.Queue[tuple[str, Delivery, str, Future[None]]] = queue.Queue()
        self._held: dict[str, tuple[TopicPartition, int]] = {}
        self._buffer: list[tuple[TopicPartition, Any]] = []
        self._closing = threading.Event()
        self._wake = threading.Event()  # set when a command arrives
        self._pending = 0
        self._producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None
        self._thread = threading.Thread(target=self._run, name="kafka-consumer", daemon=True)
        self._thread.start()

    # -- the daemon's side (main thread) -------------------------------------------------
    def poll(self, timeout_s: float) -> Delivery | None:
        try:
            return self._deliveries.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def _command(self, kind: str, delivery: Delivery, reason: str = "") -> None:
        done: Future[None] = Future()
        self._commands.put((kind, delivery, reason, done))
        self._wake.set()
        done.result(timeout=self.s.delivery_timeout_s * 2 + 60)

    def ack(self, delivery: Delivery) -> None:
        self._command("ack", delivery)

    def fail(self, delivery: Delivery, reason: str) -> None:
        self._command("fail", delivery, reason)

    def pending(self) -> int:
        """Messages behind the group's position on assigned partitions (last poll's view)."""
        return self._pending

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=60)

    # -- the consumer thread -------------------------------------------------------------
    def _connect(self) -> KafkaConsumer:
        while not self._closing.is_set():
            try:
                consumer = KafkaConsumer(
                    **self.s.common(), group_id=self.s.group_id, enable_auto_commit=False,
                    auto_offset_reset="earliest", max_poll_records=1,
                    max_poll_interval_ms=self.s.max_poll_interval_ms,
                    session_timeout_ms=self.s.session_timeout_ms,
                    heartbeat_interval_ms=min(3000, self.s.session_timeout_ms // 3),
                    fetch_max_bytes=self.s.max_message_bytes + 64 * 1024,
                    max_partition_fetch_bytes=self.s.max_message_bytes + 64 * 1024,
                    partition_assignment_strategy=_assignors(),
                )
                # know the topic's partitions before joining: a group leader without them
                # hands out an empty assignment
                while not consumer.partitions_for_topic(self.s.topic):
                    log.warning("kafka: topic %s has no partitions yet; waiting", self.s.topic)
                    if self._closing.wait(2.0):
                        raise RuntimeError("closing")
                consumer.subscribe([self.s.topic], listener=_Rebalances(self.listener))
                return consumer
            except KafkaError as exc:
                log.warning("kafka: cannot reach %s (%s); retrying", self.s.bootstrap_servers, exc)
                time.sleep(2.0)
        raise RuntimeError("closing")

    def _run(self) -> None:
        try:
            self._consumer = self._connect()
            self._producer = self.s.producer()
        except RuntimeError:
            return
        consumer = self._consumer
        last_lag = 0.0
        while not self._closing.is_set():
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
            try:
                batches = consumer.poll(timeout_ms=timeout_ms, max_records=1)
            except KafkaError as exc:
                log.warning("kafka: poll failed (%s); retrying", exc)
                time.sleep(1.0)
                continue
            _release_parked_records(consumer)
            for tp, records in batches.items():
                for rec in records:
                    if self._held:  # from a partition assigned during this poll
                        self._buffer.append((tp, rec))
                        consumer.pause(tp)
                    else:
                        self._hand_out(consumer, tp, rec)
            if time.monotonic() - last_lag > 5.0:
                last_lag = time.monotonic()
                self._report_lag(consumer)
        self._run_commands(consumer)
        consumer.close(autocommit=False)
        if self._producer is not None:
            self._producer.close(timeout=10)

    def _hand_out(self, consumer: KafkaConsumer, tp: TopicPartition, rec: Any) -> None:
        ref = f"{tp.topic}/{tp.partition}/{rec.offset}"
        self._held[ref] = (tp, rec.offset)
        consumer.pause(*consumer.assignment())
        self.listener.on_event("consumed")
        attrs = {"topic": tp.topic, "partition": str(tp.partition), "offset": str(rec.offset)}
        if rec.key is not None:
            attrs["key"] = rec.key.decode("utf-8", "replace")
        published = rec.timestamp / 1000 if rec.timestamp and rec.timestamp > 0 else 0.0
        self._deliveries.put(Delivery(raw=rec.value or b"", ref=ref, published_at=published,
                                      attrs=attrs))

    def _run_commands(self, consumer: KafkaConsumer) -> None:
        while True:
            try:
                kind, delivery, reason, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                if kind == "fail":
                    self._dead_letter(delivery, reason)
                self._commit(consumer, delivery)
                done.set_result(None)
            except Exception as exc:  # noqa: BLE001  # handed to the waiting caller
                done.set_exception(exc)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        assert self._producer is not None
        headers = [("synlearner.error", reason.encode()[:4096])]
        headers += [(f"synlearner.source.{k}", v.encode()) for k, v in delivery.attrs.items()
                    if k in ("topic", "partition", "offset")]
        key = delivery.attrs.get("key")
        _send(self._producer, self.s.delivery_timeout_s, self.s.dead_letter_topic, delivery.raw,
              key.encode() if key is not None else None, headers)
        self.listener.on_event("dead_lettered")

    def _commit(self, consumer: KafkaConsumer, delivery: Delivery) -> None:
        tp, offset = self._held.pop(delivery.ref)
        deadline = time.monotonic() + self.s.delivery_timeout_s
        while True:
            try:
                consumer.commit({tp: OffsetAndMetadata(offset + 1, "", -1)})
                self.listener.on_event("committed")
                return
            except CommitFailedError as exc:  # the partition moved: the new owner redelivers
                log.warning("kafka: commit of %s failed after a rebalance (%s); the task will be "
                            "redelivered and recognised as learned", delivery.ref, exc)
                self.listener.on_event("commit_failed")
                return
            except KafkaError as exc:
                self.listener.on_event("commit_failed")
                if time.monotonic() >= deadline:  # durable anyway: a redelivery is a duplicate
                    log.error("kafka: giving up committing %s (%s); it will be redelivered and "
                              "acknowledged as a duplicate", delivery.ref, exc)
                    return
                log.warning("kafka: commit of %s failed (%s); retrying", delivery.ref, exc)
                # keep the group alive meanwhile; what this poll returns waits its turn
                for tp, records in consumer.poll(timeout_ms=500, max_records=1).items():
                    self._buffer.extend((tp, rec) for rec in records)
                    consumer.pause(tp)
                _release_parked_records(consumer)
                time.sleep(0.5)

    def _report_lag(self, consumer: KafkaConsumer) -> None:
        assigned = sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition))
        if not assigned:
            self._pending = 0
            return
        try:
            ends = consumer.end_offsets(assigned, timeout_ms=2000)
        except KafkaError:
            return
        total = 0
        if log.isEnabledFor(logging.DEBUG):
            log.debug("kafka: held %s, buffered %d, paused %s, positions %s, ends %s",
                      list(self._held), len(self._buffer), sorted(t.partition for t in consumer.paused()),
                      {t.partition: consumer.position(t, timeout_ms=2000) for t in assigned},
                      {t.partition: ends.get(t) for t in assigned})
        for tp in assigned:
            lag = max(0, ends.get(tp, 0) - consumer.position(tp, timeout_ms=2000))
            total += lag
            if tp.partition < MAX_LAG_PARTITIONS:
                self.listener.on_event("lag", lag, f"{tp.topic}/{tp.partition}")
        self._pending = total


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


def _assignors() -> tuple[Any, ...]:
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

    return (CooperativeStickyAssignor,)


class KafkaResultSink:
    """One `TaskResult` per message on the results topic, keyed by task id."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.s = settings
        self._producer = settings.producer()

    def publish(self, result: TaskResult) -> None:
        key = result.task_id.encode() if result.task_id else None
        _send(self._producer, self.s.delivery_timeout_s, self.s.results_topic, result.to_json(), key)

    def close(self) -> None:
        self._producer.close(timeout=10)


class KafkaPublisher:
    """`synlearner submit` to Kafka: returns the delivery report "topic/partition/offset"."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.s = settings
        self._producer = settings.producer()

    def submit(self, raw: bytes, key: str) -> str:
        return _send(self._producer, self.s.delivery_timeout_s, self.s.topic, raw, key.encode())

    def close(self) -> None:
        self._producer.close(timeout=10)


def consumer_lag(settings: KafkaSettings) -> dict[str, int]:
    """Committed-offset lag of the group per partition (for `synlearner status`)."""
    consumer = KafkaConsumer(**settings.common(), group_id=settings.group_id,
                             enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(settings.topic) or set()
        tps = [TopicPartition(settings.topic, p) for p in sorted(parts)]
        ends = consumer.end_offsets(tps) if tps else {}
        lag = {}
        for tp in tps:
            committed = consumer.committed(tp) or 0
            lag[f"{tp.topic}/{tp.partition}"] = max(0, ends.get(tp, 0) - committed)
        return lag
    finally:
        consumer.close(autocommit=False)
