"""Kafka dead letters requeued against an in-process stand-in for the broker: what a stub on
the dead-letter topic may make `requeue` republish, and what requeueing everything skips.
(The real broker runs in tests/integration/test_kafka_hardening.py.)"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from synlearner.stream import kafka_dlq
from synlearner.stream.config import KafkaConfig, StreamConfig
from synlearner.stream.kafka_dlq import requeue, requeue_report

TASKS, DLQ, SECRETS = "tasks", "tasks.dlq", "secrets"


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = 1_700_000_000_000


class Broker:
    """Topics of one partition each; what consumers read, and what the producer wrote."""

    def __init__(self) -> None:
        self.topics: dict[str, list[Record]] = {TASKS: [], DLQ: [], SECRETS: []}
        self.read: set[str] = set()  # topics any consumer was assigned

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> Record:
        rec = Record(topic, 0, len(self.topics[topic]), key, value, list(headers or []))
        self.topics[topic].append(rec)
        return rec


class Consumer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, parts: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(parts, 0)
        self.paused = set()
        self.broker.read |= {tp.topic for tp in parts}

    def seek_to_beginning(self, *parts: TopicPartition) -> None:
        for tp in parts:
            self.positions[tp] = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def beginning_offsets(self, parts: list[TopicPartition], timeout_ms: int = 0) -> dict[Any, int]:
        return dict.fromkeys(parts, 0)

    def end_offsets(self, parts: list[TopicPartition], timeout_ms: int = 0) -> dict[Any, int]:
        return {tp: len(self.broker.topics[tp.topic]) for tp in parts}

    def position(self, tp: TopicPartition, timeout_ms: int = 0) -> int:
        return self.positions[tp]

    def pause(self, *parts: TopicPartition) -> None:
        self.paused |= set(parts)

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Record]]:
        out = {}
        for tp, at in self.positions.items():
            records = self.broker.topics[tp.topic][at:]
            if records and tp not in self.paused:
                out[tp] = records
                self.positions[tp] = at + len(records)
        return out

    def close(self, autocommit: bool = False) -> None:
        pass


class Sent:
    def __init__(self, rec: Record) -> None:
        self.rec = rec

    def get(self, timeout: float) -> Record:
        return self.rec


class Producer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def send(self, topic: str, value: bytes, key: bytes | None,
             headers: list[tuple[str, bytes]] | None) -> Sent:
        return Sent(self.broker.produce(topic, value, key, headers))

    def close(self, timeout: float = 0) -> None:
        pass


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    b = Broker()
    monkeypatch.setattr(kafka_dlq, "new_consumer", lambda **_: Consumer(b))
    monkeypatch.setattr(kafka_dlq, "make_producer", lambda *_: Producer(b))
    return b


def settings() -> StreamConfig:
    return StreamConfig(kind="kafka", kafka=KafkaConfig(topic=TASKS, dead_letter_topic=DLQ))


def stub(broker: Broker, topic: str, offset: int, digest: str | None) -> str:
    """A stub on the dead-letter topic pointing to `topic/0/offset`; returns its id."""
    body: dict[str, Any] = {"synlearner.stub": "record too large to republish", "bytes": 1,
                            "source": {"topic": topic, "partition": 0, "offset": offset}}
    if digest is not None:
        body["sha256"] = digest
    rec = broker.produce(DLQ, json.dumps(body).encode(), b"k", [
        ("synlearner.error", b"message: exceeds max_message_bytes=10"),
        ("synlearner.source.topic", topic.encode()), ("synlearner.source.partition", b"0"),
        ("synlearner.source.offset", str(offset).encode()), ("synlearner.stub", b"1")])
    return f"{DLQ}/0/{rec.offset}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def republished(broker: Broker) -> list[bytes]:
    return [r.value for r in broker.topics[TASKS] if dict(r.headers).get(kafka_dlq.REQUEUED_FROM)]


def test_a_stub_is_requeued_with_its_original_from_the_tasks_topic(broker: Broker,
                                                                   tmp_path: Path) -> None:
    original = broker.produce(TASKS, b'{"task_id": "big"}', b"big")
    dl_id = stub(broker, TASKS, original.offset, sha(original.value))
    assert requeue(settings(), None, tmp_path / "log.json") == [dl_id]
    assert republished(broker) == [original.value]


def test_a_stub_without_a_sha256_is_refused(broker: Broker, tmp_path: Path) -> None:
    broker.produce(TASKS, b'{"task_id": "any"}')
    for digest in (None, "", "not-a-digest"):
        dl_id = stub(broker, TASKS, 0, digest)
        report = requeue_report(settings(), [dl_id], tmp_path / "log.json")
        assert report.requeued == [] and "no valid SHA-256" in report.skipped[dl_id]
    assert republished(broker) == []


def test_a_stub_pointing_outside_the_tasks_topic_is_refused_unread(broker: Broker,
                                                                   tmp_path: Path) -> None:
    secret = broker.produce(SECRETS, b"password=hunter2")
    dl_id = stub(broker, SECRETS, secret.offset, sha(secret.value))
    report = requeue_report(settings(), None, tmp_path / "log.json")
    assert report.requeued == [] and "not the tasks topic 'tasks'" in report.skipped[dl_id]
    assert republished(broker) == [] and SECRETS not in broker.read


def test_a_stub_whose_original_differs_is_refused(broker: Broker, tmp_path: Path) -> None:
    broker.produce(TASKS, b"another record at that offset")
    dl_id = stub(broker, TASKS, 0, sha(b"the original"))
    report = requeue_report(settings(), None, tmp_path / "log.json")
    assert report.requeued == [] and "SHA-256 differs" in report.skipped[dl_id]


def test_requeue_all_skips_messages_quarantined_for_crashing(broker: Broker,
                                                            tmp_path: Path) -> None:
    poison = broker.produce(DLQ, b"poison", b"p", [
        ("synlearner.error", b"crashed 3 times: last in phase train of task p"),
        ("synlearner.attempts", b"3")])
    bad = broker.produce(DLQ, b"bad", b"b", [("synlearner.error", b"message: not valid JSON")])
    log = tmp_path / "log.json"
    report = requeue_report(settings(), None, log)
    assert report.requeued == [f"{DLQ}/0/{bad.offset}"]
    assert "quarantined for crashing" in report.skipped[f"{DLQ}/0/{poison.offset}"]
    assert requeue(settings(), [f"{DLQ}/0/{poison.offset}"], log) == [f"{DLQ}/0/{poison.offset}"]
    assert republished(broker) == [b"bad", b"poison"]
