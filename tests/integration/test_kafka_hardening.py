"""`KafkaTaskSource` against a real broker when things go wrong: errors in the consumer thread,
broker outages, oversized records, an unwritable dead-letter or results topic; and dead
letters listed and requeued."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, TopicPartition

from synlearner.stream.base import Delivery
from synlearner.stream.config import KafkaConfig, StreamConfig
from synlearner.stream.errors import SourceUnavailable
from synlearner.stream.kafka import KafkaResultSink, KafkaTaskSource
from synlearner.stream.kafka_dlq import list_dead_letters, requeue, requeue_report
from synlearner.stream.schema import Limits, TaskResult
from tests.kafka_broker.broker import KafkaBroker
from tests.kafka_broker.harness import Topics, committed, produce, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def sources() -> Iterator[list[KafkaTaskSource]]:
    made: list[KafkaTaskSource] = []
    yield made
    for source in made:
        source.close()


def settings(broker: KafkaBroker, topics: Topics, max_message_bytes: int = 4 * 1024 * 1024,
             **kw: Any) -> StreamConfig:
    base: dict[str, Any] = {
        "topic": topics.tasks, "group_id": topics.group, "results_topic": topics.results,
        "dead_letter_topic": topics.dlq, "session_timeout_ms": 6000, "poll_timeout_ms": 100}
    return StreamConfig(kind="kafka", limits=Limits(max_message_bytes=max_message_bytes),
                        kafka=KafkaConfig(bootstrap_servers=[broker.bootstrap], **(base | kw)))


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not in {timeout} s: {what}"
        time.sleep(0.2)


def next_delivery(source: KafkaTaskSource, timeout: float = 60) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = source.poll(0.5)
        if delivery is not None:
            return delivery
    raise AssertionError(f"nothing delivered in {timeout} s")


def break_once(obj: Any, method: str, exc: BaseException) -> list[int]:
    """Make `obj.method` raise `exc` on its next call only; returns the call log."""
    original = getattr(obj, method)
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise exc
        return original(*args, **kwargs)

    setattr(obj, method, broken)
    return calls


def kafka_io_threads() -> int:
    return sum(t.name.startswith("kafka-io") for t in threading.enumerate())


def retry(call: Callable[[], None], timeout: float) -> int:
    """Call until it does not raise `SourceUnavailable`; returns the number of failures."""
    deadline = time.monotonic() + timeout
    failures = 0
    while True:
        try:
            call()
            return failures
        except SourceUnavailable:
            failures += 1
            assert time.monotonic() < deadline, f"still unavailable after {timeout} s"
            time.sleep(1.0)


def test_an_error_in_the_consumer_thread_reconnects_and_the_held_delivery_stays_ackable(
    broker: KafkaBroker, sources: list[KafkaTaskSource], caplog: pytest.LogCaptureFixture,
) -> None:
    topics = Topics(broker)
    produce(broker, topics.tasks, [("a", b"one"), ("b", b"two")])
    source = KafkaTaskSource(settings(broker, topics))
    sources.append(source)
    first = next_delivery(source)
    assert first.raw == b"one"
    consumer, generation = source._consumer, source._generation
    with caplog.at_level(logging.ERROR, logger="synlearner.stream.kafka"):
        calls = break_once(consumer, "pause", RuntimeError("injected"))
        wait_for(lambda: source._generation > generation, 30, "a new consumer")
    assert calls and "consumer failed (RuntimeError('injected'))" in caplog.text
    assert source._consumer is not consumer and source._thread.is_alive()
    assert source.poll(1.0) is None  # the first is still out: nothing else is handed out
    source.ack(first)  # committed through the new consumer
    second = next_delivery(source)
    assert second.raw == b"two"
    source.ack(second)
    assert source.poll(2.0) is None  # "one" is not delivered again
    wait_for(lambda: committed(broker, topics) == 2, 30, "both offsets committed")
    assert source.healthy()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_consumer_thread_is_unhealthy_and_poll_raises(
    broker: KafkaBroker, sources: list[KafkaTaskSource],
) -> None:
    topics = Topics(broker)
    produce(broker, topics.tasks, [("a", b"one")])
    source = KafkaTaskSource(settings(broker, topics))
    sources.append(source)
    delivery = next_delivery(source)
    assert source.healthy()
    assert source._consumer is not None
    break_once(source._consumer, "poll", SystemExit(3))  # escapes the thread's error handling
    source._thread.join(timeout=30)
    assert not source._thread.is_alive()
    assert not source.healthy()
    with pytest.raises(SourceUnavailable):
        source.poll(0.1)
    with pytest.raises(SourceUnavailable):
        source.ack(delivery)


def test_an_oversized_record_is_dead_lettered_as_a_stub_and_can_be_requeued(
    broker: KafkaBroker, sources: list[KafkaTaskSource], tmp_path: Path,
) -> None:
    topics = Topics(broker)
    big = json.dumps({"task_id": "big", "instruction": "x" * 200_000}).encode()
    produce(broker, topics.tasks, [("big", big)])
    s = settings(broker, topics, max_message_bytes=10_000)  # the producer sends 74 KiB at most
    source = KafkaTaskSource(s)
    sources.append(source)
    delivery = next_delivery(source)
    assert delivery.raw == big
    source.fail(delivery, "message: exceeds max_message_bytes=10000")

    [dead] = read_topic(broker, topics.dlq, 1, timeout=30)
    assert json.loads(dead.value) == {
        "synlearner.stub": "record too large to republish", "bytes": len(big),
        "sha256": hashlib.sha256(big).hexdigest(),
        "source": {"topic": topics.tasks, "partition": 0, "offset": 0},
    }
    assert dead.key == b"big"
    assert dict(dead.headers) == {
        "synlearner.error": b"message: exceeds max_message_bytes=10000",
        "synlearner.source.topic": topics.tasks.encode(), "synlearner.source.partition": b"0",
        "synlearner.source.offset": b"0", "synlearner.stub": b"1",
    }
    wait_for(lambda: committed(broker, topics) == 1, 30, "the offset committed")

    log = tmp_path / "requeued.json"
    [letter] = list_dead_letters(s, log)
    assert letter.stub and letter.source == f"{topics.tasks}/0/0" and not letter.requeued
    assert requeue(s, None, log) == [letter.id]  # the original, read back from the tasks topic
    again = next_delivery(source)
    assert again.raw == big and again.attrs["key"] == "big" and again.attrs["offset"] == "1"
    source.ack(again)

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.delete_records({TopicPartition(topics.tasks, 0): 1})  # the original is gone
    finally:
        admin.close()
    report = requeue_report(s, None, log, force=True)
    assert report.requeued == []
    assert "no longer retained" in report.skipped[letter.id]


def test_an_unwritable_dead_letter_or_results_topic_raises_source_unavailable_in_time(
    broker: KafkaBroker, sources: list[KafkaTaskSource],
) -> None:
    topics = Topics(broker)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    s = settings(broker, topics, delivery_timeout_s=3.0, dead_letter_topic=f"{missing}-dlq",
                 results_topic=f"{missing}-results")
    produce(broker, topics.tasks, [("a", b"one"), ("b", b"two")])
    source = KafkaTaskSource(s)
    sources.append(source)
    sink = KafkaResultSink(s)
    try:
        delivery = next_delivery(source)
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=f"{missing}-dlq"):
            source.fail(delivery, "schema: wrong")
        assert 2.5 < time.monotonic() - started < 10
        result = TaskResult("a", "invalid", error="schema: wrong")
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=f"{missing}-results"):
            sink.publish(result)
        assert 2.5 < time.monotonic() - started < 10
        assert source.poll(1.0) is None  # still held, not committed
        assert committed(broker, topics) == 0

        broker.create_topic(f"{missing}-dlq")
        broker.create_topic(f"{missing}-results")
        retry(lambda: source.fail(delivery, "schema: wrong"), 30)
        retry(lambda: sink.publish(result), 30)
        nxt = next_delivery(source)
        assert nxt.raw == b"two"
        source.ack(nxt)
    finally:
        sink.close()
    [dead] = read_topic(broker, f"{missing}-dlq", 1, timeout=30, settle=1)
    assert dead.value == b"one" and dict(dead.headers)["synlearner.error"] == b"schema: wrong"
    [published] = read_topic(broker, f"{missing}-results", 1, timeout=30, settle=1)
    assert json.loads(published.value)["task_id"] == "a"
    wait_for(lambda: committed(broker, topics) == 2, 30, "both offsets committed")


def test_dead_letters_are_listed_and_requeued_once(
    broker: KafkaBroker, sources: list[KafkaTaskSource], tmp_path: Path,
) -> None:
    topics = Topics(broker)
    produce(broker, topics.tasks, [("a", b"alpha"), ("b", b"beta")])
    s = settings(broker, topics)
    source = KafkaTaskSource(s)
    sources.append(source)
    first = next_delivery(source)
    source.fail(first, "schema: task_id missing")
    second = next_delivery(source)
    second.attrs["attempts"] = "3"
    source.fail(second, "crashed: the process died while handling it 3 times")

    log = tmp_path / "dlq" / "requeued.json"
    letters = list_dead_letters(s, log)
    assert [(d.reason, d.source, d.attempts, d.requeued, d.stub) for d in letters] == [
        ("schema: task_id missing", f"{topics.tasks}/0/0", 0, False, False),
        ("crashed: the process died while handling it 3 times", f"{topics.tasks}/0/1", 3, False,
         False),
    ]
    assert [d.id for d in letters] == [f"{topics.dlq}/0/0", f"{topics.dlq}/0/1"]
    assert all(abs(d.when - time.time()) < 120 for d in letters)

    assert requeue(s, [letters[0].id], log) == [letters[0].id]
    back = next_delivery(source)
    assert (back.raw, back.attrs["key"]) == (b"alpha", "a")
    source.ack(back)
    assert [d.requeued for d in list_dead_letters(s, log)] == [True, False]

    assert requeue(s, None, log) == [letters[1].id]  # skips the one already requeued
    back = next_delivery(source)
    assert (back.raw, back.attrs["key"]) == (b"beta", "b")
    source.ack(back)
    assert requeue(s, None, log) == []
    assert requeue_report(s, None, log).skipped.keys() == {d.id for d in letters}
    assert set(json.loads(log.read_text())["requeued"]) == {d.id for d in letters}
    assert list(log.parent.iterdir()) == [log]  # no temporary files left
    with pytest.raises(KeyError, match="no such dead letter"):
        requeue(s, [letters[0].id, f"{topics.dlq}/0/99"], log, force=True)
    assert source.poll(1.0) is None


def test_the_consumer_survives_a_broker_outage_and_a_failed_reconnect(
    broker: KafkaBroker, sources: list[KafkaTaskSource], caplog: pytest.LogCaptureFixture,
) -> None:
    """Runs last in the module: it stops and restarts the shared broker."""
    topics = Topics(broker)
    produce(broker, topics.tasks, [("a", b"one")])
    s = settings(broker, topics, delivery_timeout_s=4.0, unhealthy_after_s=6.0)
    source = KafkaTaskSource(s)
    sources.append(source)
    first = next_delivery(source)
    assert source.healthy()
    io_threads = kafka_io_threads()
    caplog.set_level(logging.ERROR, logger="synlearner.stream.kafka")
    broker.stop()
    try:
        assert source._consumer is not None
        generation = source._generation
        break_once(source._consumer, "pause", RuntimeError("injected during the outage"))
        started = time.monotonic()
        with pytest.raises(SourceUnavailable):
            source.fail(first, "schema: wrong")
        assert time.monotonic() - started < 4.0 + 15
        wait_for(lambda: not source.healthy(), 30, "unhealthy while the broker is away")
        wait_for(lambda: "consumer failed (KafkaTimeoutError" in caplog.text, 30,
                 "a reconnect that failed")
        assert source._thread.is_alive() and source._generation == generation
    finally:
        broker.start()
    produce(broker, topics.tasks, [("b", b"two")])
    retry(lambda: source.fail(first, "schema: wrong"), 120)
    wait_for(source.healthy, 60, "healthy again")
    assert source._generation > generation  # connected again with a new consumer
    second = next_delivery(source, timeout=120)
    assert second.raw == b"two"  # the failed one is not delivered again
    source.ack(second)
    dead = read_topic(broker, topics.dlq, 1, timeout=30, settle=1)
    assert [r.value for r in dead] == [b"one"]
    wait_for(lambda: committed(broker, topics) == 2, 60, "both offsets committed")
    assert kafka_io_threads() <= io_threads  # a consumer that could not start left none behind
