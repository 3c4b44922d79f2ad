"""Helpers for the Kafka integration tests: daemons as subprocesses, topics read back."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.kafka_broker.broker import KafkaBroker, free_port


class Topics:
    def __init__(self, broker: KafkaBroker, partitions: int = 1) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.tasks = f"tasks-{suffix}"
        self.results = f"results-{suffix}"
        self.dlq = f"dlq-{suffix}"
        self.group = f"group-{suffix}"
        broker.create_topic(self.tasks, partitions)
        broker.create_topic(self.results, 1)
        broker.create_topic(self.dlq, 1)


def write_config(path: Path, broker: KafkaBroker, topics: Topics, state: Path,
                 kafka_extra: str = "",
                 learner: str = "{train: {max_steps: 6, epochs: 2.0, batch_size: 8}}",
                 session_timeout_ms: int = 10000) -> int:
    port = free_port()
    path.write_text(
        f"state_dir: {state}\n"
        "stream:\n"
        "  kind: kafka\n"
        "  poll_timeout_s: 0.2\n"
        "  limits: {max_message_bytes: 200000}\n"
        "  kafka:\n"
        f"    bootstrap_servers: ['{broker.bootstrap}']\n"
        f"    topic: {topics.tasks}\n"
        f"    results_topic: {topics.results}\n"
        f"    dead_letter_topic: {topics.dlq}\n"
        f"    group_id: {topics.group}\n"
        f"    session_timeout_ms: {session_timeout_ms}\n"  # heartbeats share loaded cores
        f"{kafka_extra}"
        f"learner: {learner}\n"
        f"daemon: {{http: {{port: {port}}}, progress_every_steps: 1}}\n"
    )
    return port


CRASH_AT = Path(__file__).parents[1] / "crash_at.py"


class Daemon:
    def __init__(self, config: Path, log: Path, port: int,
                 crash_at: tuple[str, int] | None = None) -> None:
        """`crash_at`: (task id, step): the process kills itself when that task reaches that
        training step (`tests/crash_at.py`)."""
        self.config, self.log, self.port = config, log, port
        self.crash_at = crash_at
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        fh = self.log.open("ab")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        run = ([str(CRASH_AT), self.crash_at[0], str(self.crash_at[1])] if self.crash_at
               else ["-m", "synlearner.daemon.tools.cli"])
        self.proc = subprocess.Popen(
            [sys.executable, *run, "--config", str(self.config), "run"],
            stdout=fh, stderr=subprocess.STDOUT, env=env)
        return self

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_log(self, pattern: str, timeout: float = 300, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return
            assert self.proc is not None and self.proc.poll() is None, self.text()[-4000:]
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} x{count} not seen in {timeout} s:\n{self.text()[-4000:]}")

    def metric(self, name: str) -> float:
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read()
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def produce(broker: KafkaBroker, topic: str, messages: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                             enable_idempotence=True, max_request_size=2_000_000)
    for key, value in messages:
        producer.send(topic, key=key.encode(), value=value).get(timeout=30)
    producer.close()


def read_topic(broker: KafkaBroker, topic: str, n: int, timeout: float = 300,
               settle: float = 0.0) -> list[Any]:
    """Read records from the start until `n` arrived and everything up to the end offsets
    at that moment was read (then `settle` s more), or time out."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0}]
    consumer.assign(parts)
    consumer.seek_to_beginning()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    settle_until = None
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        if len(records) >= n and settle_until is None:
            ends = consumer.end_offsets(parts)
            if all(consumer.position(tp) >= ends[tp] for tp in parts):
                settle_until = time.monotonic() + settle
        if settle_until is not None and time.monotonic() >= settle_until:
            break
    consumer.close()
    return records


def results(broker: KafkaBroker, topic: str, n: int, timeout: float = 300,
            settle: float = 0.0) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in read_topic(broker, topic, n, timeout, settle)]


def learned_results(broker: KafkaBroker, topic: str, ids: list[str], timeout: float = 300,
                    settle: float = 3.0) -> list[dict[str, Any]]:
    """All results once every task id in `ids` has a "learned" result (then `settle` s more)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = results(broker, topic, 0, timeout=2)
        if {r["task_id"] for r in rows if r["status"] == "learned"} >= set(ids):
            time.sleep(settle)
            return results(broker, topic, 0, timeout=2)
        if time.monotonic() >= deadline:
            return rows
        time.sleep(1.0)


def committed(broker: KafkaBroker, topics: Topics) -> int:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=topics.group,
                             enable_auto_commit=False)
    parts = consumer.partitions_for_topic(topics.tasks) or set()
    total = sum(consumer.committed(TopicPartition(topics.tasks, p)) or 0 for p in parts)
    consumer.close(autocommit=False)
    return total
