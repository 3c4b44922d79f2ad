"""Producing to Kafka with a bounded wait, the results sink and the publisher.

`ProducerSlot.send` waits for the broker's ack up to `delivery_timeout_s` and then raises
`SourceUnavailable` (the topic cannot be written now: keep the message, retry later). The
producer is created on first use and dropped after a failure, so a broker blip at start-up
or a producer left in a bad state costs one retry, not the process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError

from synlearner.stream.config import KafkaConfig, StreamConfig
from synlearner.stream.errors import SourceUnavailable
from synlearner.stream.schema import TaskResult

log = logging.getLogger(__name__)
Headers = list[tuple[str, bytes]]


def producer(stream: StreamConfig, max_request_size: int | None = None) -> KafkaProducer:
    """An idempotent producer (acks=all) whose waits are bounded by `delivery_timeout_s`."""
    k = stream.kafka
    timeout_ms = max(1000, int(k.delivery_timeout_s * 1000))
    return KafkaProducer(
        **k.common(), acks="all", enable_idempotence=True, linger_ms=0,
        max_request_size=max_request_size or stream.limits.max_message_bytes + 64 * 1024,
        delivery_timeout_ms=timeout_ms, request_timeout_ms=min(30_000, timeout_ms),
        max_block_ms=timeout_ms, bootstrap_timeout_ms=min(30_000, timeout_ms),
    )


def new_consumer(**config: Any) -> KafkaConsumer:
    """A `KafkaConsumer`; kafka-python 3.0 starts its IO thread before it bootstraps, and
    leaves it running when that fails (no broker): stop it then."""
    consumer = KafkaConsumer.__new__(KafkaConsumer)
    try:
        consumer.__init__(**config)
    except BaseException:
        for close in (getattr(getattr(consumer, "_net", None), "stop", None),
                      getattr(getattr(consumer, "_client", None), "close", None)):
            try:
                if close is not None:
                    close()
            except Exception as exc:  # noqa: BLE001  # best effort, the first error matters
                log.debug("kafka: cleaning up a consumer that did not start: %r", exc)
        raise
    return consumer


def group_consumer(k: KafkaConfig, max_bytes: int) -> KafkaConsumer:
    """The tasks consumer: explicit commits one record at a time, cooperative rebalancing."""
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

    return new_consumer(
        **k.common(), group_id=k.group_id, enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=1,
        max_poll_interval_ms=k.max_poll_interval_ms, session_timeout_ms=k.session_timeout_ms,
        heartbeat_interval_ms=min(3000, k.session_timeout_ms // 3),
        fetch_max_bytes=max_bytes + 64 * 1024, max_partition_fetch_bytes=max_bytes + 64 * 1024,
        partition_assignment_strategy=(CooperativeStickyAssignor,), bootstrap_timeout_ms=10_000,
    )


def send_until(producer: KafkaProducer, deadline: float, topic: str, value: bytes,
               key: bytes | None, headers: Headers | None = None) -> str:
    """Produce one record and wait for the broker's ack, retrying until `deadline`
    (monotonic). Returns "topic/partition/offset"; raises `SourceUnavailable` when the
    record could not be written in time, `MessageSizeTooLargeError` when it never can."""
    while True:
        try:
            meta = producer.send(topic, value=value, key=key, headers=headers).get(
                timeout=max(0.5, deadline - time.monotonic()))
            return f"{meta.topic}/{meta.partition}/{meta.offset}"
        except MessageSizeTooLargeError:
            raise
        except KafkaError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SourceUnavailable(f"kafka: cannot write to {topic}: {exc!r}") from exc
            log.warning("kafka: producing to %s failed (%r); retrying", topic, exc)
            time.sleep(min(1.0, left))


class ProducerSlot:
    """A producer created on first use and dropped after a failed send."""

    def __init__(self, make: Callable[[], KafkaProducer], timeout_s: float) -> None:
        self._make = make
        self.timeout_s = timeout_s
        self._producer: KafkaProducer | None = None

    def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers | None = None) -> str:
        deadline = time.monotonic() + self.timeout_s
        if self._producer is None:
            try:
                self._producer = self._make()
            except Exception as exc:  # noqa: BLE001  # no broker yet, bad address, ...
                raise SourceUnavailable(f"kafka: cannot create a producer: {exc!r}") from exc
        try:
            return send_until(self._producer, deadline, topic, value, key, headers)
        except SourceUnavailable:
            self.close(0.0)
            raise

    def close(self, timeout_s: float = 10.0) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001  # closing is best effort
                log.warning("kafka: closing a producer failed: %r", exc)


class KafkaResultSink:
    """One `TaskResult` per message on the results topic, keyed by task id."""

    def __init__(self, stream: StreamConfig) -> None:
        self.s = stream.kafka
        self._producer = ProducerSlot(lambda: producer(stream), self.s.delivery_timeout_s)

    def publish(self, result: TaskResult) -> None:
        """Raises `SourceUnavailable` when the results topic cannot be written in
        `delivery_timeout_s`."""
        key = result.task_id.encode() if result.task_id else None
        self._producer.send(self.s.results_topic, result.to_json(), key)

    def close(self) -> None:
        self._producer.close()


class KafkaPublisher:
    """`synlearner submit` to Kafka: returns the delivery report "topic/partition/offset"."""

    def __init__(self, stream: StreamConfig) -> None:
        self.s = stream.kafka
        self._producer = ProducerSlot(lambda: producer(stream), self.s.delivery_timeout_s)

    def submit(self, raw: bytes, key: str) -> str:
        return self._producer.send(self.s.topic, raw, key.encode())

    def close(self) -> None:
        self._producer.close()


def consumer_lag(stream: StreamConfig) -> dict[str, int]:
    """Committed-offset lag of the group per partition (for `synlearner status`)."""
    settings = stream.kafka
    consumer = new_consumer(**settings.common(), group_id=settings.group_id,
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


def partition_lag(consumer: KafkaConsumer, topic: str) -> dict[TopicPartition, int] | None:
    """Messages behind the end of each partition of `topic` assigned to `consumer` (None
    when the broker cannot say now: unreachable, or the assignment just changed)."""
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
    assigned = [tp for tp in tps if tp in consumer.assignment()]
    try:
        ends = consumer.end_offsets(tps, timeout_ms=2000) if tps else {}
        positions = {tp: consumer.position(tp, timeout_ms=2000) for tp in assigned}
    except KafkaError as exc:
        log.debug("kafka: no lag report (%r)", exc)
        return None
    return {tp: max(0, ends.get(tp, 0) - pos) for tp, pos in positions.items() if pos is not None}
