"""The Kafka source and sinks against a real Apache Kafka broker (KRaft, from Maven Central's
jars), with the daemon running as a real process."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from synlearner.daemon.state import State
from synlearner.daemon.tools.demo import demo_stream
from tests.kafka_broker.broker import KafkaBroker
from tests.kafka_broker.harness import (
    Daemon,
    Topics,
    committed,
    learned_results,
    produce,
    read_topic,
    results,
    write_config,
)

pytestmark = pytest.mark.integration
SLOW = "{train: {max_steps: 20, epochs: 8.0, batch_size: 16}}"


def tasks(prefix: str, n: int, n_train: int = 16) -> list[tuple[str, bytes]]:
    base = demo_stream(seed=11, n_train=n_train, n_eval=8)
    out = []
    for i in range(n):
        msg = dict(base[i % len(base)])
        msg["task_id"] = f"{prefix}-{i}"
        out.append((msg["task_id"], json.dumps(msg).encode()))
    return out


def learned_once(rows: list[dict], ids: list[str], daemon: Daemon) -> None:  # type: ignore[type-arg]
    """`assert_learned_once`, with the end of the daemon's log when it fails."""
    assert_learned_once(rows, ids, daemon.text()[-6000:])


def assert_learned_once(rows: list[dict], ids: list[str], context: str = "",  # type: ignore[type-arg]
                        commits_given_up: int = 0) -> None:
    """Each task learned once, but for one more time per commit that a rebalance stopped
    (at-least-once: the new owner of the partition reads the record again)."""
    counts = Counter(r["task_id"] for r in rows if r["status"] == "learned")
    assert sorted(counts) == sorted(ids), f"{counts}\n{context}"
    again = sum(n - 1 for n in counts.values())
    assert again <= commits_given_up, f"{counts}, {commits_given_up} commits given up\n{context}"


GIVEN_UP = re.compile(r"moved to another member before its commit|failed after a rebalance|"
                      r"giving up committing")


def wait_committed(broker: KafkaBroker, topics: Topics, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while committed(broker, topics) < n:
        assert time.monotonic() < deadline, f"only {committed(broker, topics)} of {n} committed"
        time.sleep(0.5)
    assert committed(broker, topics) == n


def test_tasks_are_learned_once_and_offsets_committed_after_results(
    broker: KafkaBroker, tmp_path: Path,
) -> None:
    topics = Topics(broker, partitions=2)
    cfg = tmp_path / "config.yaml"
    port = write_config(cfg, broker, topics, tmp_path / "state")
    batch = tasks("n", 4)
    for task_id, raw in batch:
        (tmp_path / f"{task_id}.json").write_bytes(raw)
    submit = subprocess.run(
        [sys.executable, "-m", "synlearner.daemon.tools.cli", "--config", str(cfg), "submit",
         *[str(tmp_path / f"{t}.json") for t, _ in batch]],
        capture_output=True, text=True, timeout=120, check=True)
    assert submit.stdout.count("submitted n-") == 4 and f"{topics.tasks}/" in submit.stdout
    daemon = Daemon(cfg, tmp_path / "daemon.log", port).start()
    try:
        rows = results(broker, topics.results, 4)
        learned_once(rows, [t for t, _ in batch], daemon)
        assert all(r["schema"] == "synlearner.result/v1" and r["adapter_path"] for r in rows)
        keys = [r.key.decode() for r in read_topic(broker, topics.results, 4)]
        assert sorted(keys) == sorted(t for t, _ in batch)  # keyed by task id
        wait_committed(broker, topics, 4)
        assert daemon.metric("synlearner_stream_committed_total") == 4
        assert daemon.metric("synlearner_stream_consumed_total") == 4
        assert daemon.metric("synlearner_publish_to_learned_seconds_count") == 4
        status = subprocess.run(
            [sys.executable, "-m", "synlearner.daemon.tools.cli", "--config", str(cfg), "status"],
            capture_output=True, text=True, timeout=120, check=True)
        lag = json.loads(status.stdout)["consumer_lag"]
        assert lag == {f"{topics.tasks}/0": 0, f"{topics.tasks}/1": 0}
    finally:
        assert daemon.stop() == 0


def test_training_longer_than_max_poll_interval_keeps_the_group(
    broker: KafkaBroker, tmp_path: Path,
) -> None:
    topics = Topics(broker)
    cfg = tmp_path / "config.yaml"
    port = write_config(cfg, broker, topics, tmp_path / "state",
                        kafka_extra="    max_poll_interval_ms: 6000\n",
                        learner="{train: {max_steps: 60, epochs: 20.0, batch_size: 16}}")
    batch = tasks("poll", 2, n_train=48)
    produce(broker, topics.tasks, batch)
    daemon = Daemon(cfg, tmp_path / "daemon.log", port).start()
    try:
        rows = learned_results(broker, topics.results, [t for t, _ in batch])
        learned_once(rows, [t for t, _ in batch], daemon)
        train_s = [r["timings"]["train"] for r in rows]
        assert min(train_s) > 6.0, train_s  # each task trained for longer than the interval
        wait_committed(broker, topics, 2)
        assert daemon.metric("synlearner_stream_rebalances_total") == 1  # the first join only
        assert daemon.metric("synlearner_stream_commit_failures_total") == 0
        assert "kafka: partitions revoked" not in daemon.text()
        assert "kafka: partitions lost" not in daemon.text()
    finally:
        assert daemon.stop() == 0


def test_malformed_messages_go_to_the_dead_letter_topic(broker: KafkaBroker, tmp_path: Path) -> None:
    topics = Topics(broker)
    cfg = tmp_path / "config.yaml"
    port = write_config(cfg, broker, topics, tmp_path / "state")
    good = tasks("good", 2)
    wrong_schema = json.loads(good[0][1]) | {"schema": "synlearner.task/v0", "task_id": "ws"}
    oversized = json.loads(good[0][1]) | {"task_id": "big", "instruction": "x" * 250_000}
    bad_id = json.loads(good[0][1]) | {"task_id": "../../etc/passwd"}
    produce(broker, topics.tasks, [
        good[0], ("nj", b"{not json"), ("ws", json.dumps(wrong_schema).encode()),
        ("big", json.dumps(oversized).encode()), ("id", json.dumps(bad_id).encode()), good[1],
    ])
    daemon = Daemon(cfg, tmp_path / "daemon.log", port).start()
    try:
        rows = results(broker, topics.results, 6)
        learned_once(rows, [t for t, _ in good], daemon)
        assert sum(r["status"] == "invalid" for r in rows) == 4
        dead = read_topic(broker, topics.dlq, 4, settle=2)
        assert len(dead) == 4
        reasons = {r.key.decode(): dict(r.headers) for r in dead}
        assert reasons["nj"]["synlearner.error"].startswith(b"message: not valid JSON")
        assert b"schema" in reasons["ws"]["synlearner.error"]
        assert b"exceeds max_message_bytes=200000" in reasons["big"]["synlearner.error"]
        assert reasons["id"]["synlearner.error"].startswith(b"task_id:")
        for headers in reasons.values():
            assert headers["synlearner.source.topic"] == topics.tasks.encode()
            assert int(headers["synlearner.source.offset"]) in range(1, 5)
        assert next(r for r in dead if r.key == b"nj").value == b"{not json"  # original bytes
        wait_committed(broker, topics, 6)
    finally:
        assert daemon.stop() == 0


def slow_stream(broker: KafkaBroker, tmp_path: Path, prefix: str,
                n: int) -> tuple[Topics, Path, Path, int, list[tuple[str, bytes]]]:
    """Topics with `n` tasks of 32 examples on them, and a config that trains them slowly."""
    topics = Topics(broker)
    cfg, state = tmp_path / "config.yaml", tmp_path / "state"
    port = write_config(cfg, broker, topics, state, learner=SLOW)
    batch = tasks(prefix, n, n_train=32)
    produce(broker, topics.tasks, batch)
    return topics, cfg, state, port, batch


def test_kill_9_mid_task_then_restart_learns_each_task_once(broker: KafkaBroker, tmp_path: Path) -> None:
    topics, cfg, state, port, batch = slow_stream(broker, tmp_path, "k", 3)
    first = Daemon(cfg, tmp_path / "first.log", port).start()
    first.wait_log(r"task k-1: train\n")  # its train phase began (the probe, then training)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = Daemon(cfg, tmp_path / "second.log", port).start()
    try:
        rows = learned_results(broker, topics.results, [t for t, _ in batch])
        learned_once(rows, [t for t, _ in batch], second)
        wait_committed(broker, topics, 3)
    finally:
        assert second.stop() == 0
    entries = State.read(state).as_dict()["entries"]
    assert [e["task_id"] for e in entries] == [t for t, _ in batch]
    adapters = {p.name for p in (state / "adapters").iterdir()}
    # the task-agnostic merge runs when the stream is idle: it may or may not have run yet
    assert adapters - {"@consolidated-classification"} == {t for t, _ in batch}
    db = sqlite3.connect(state / "memory" / "memory.sqlite3")
    per_task = dict(db.execute(
        "SELECT task_id, COUNT(*) FROM records WHERE kind='experience' GROUP BY task_id"))
    assert per_task == {t: 32 + 8 for t, _ in batch}  # no leftovers of the killed attempt
    db.close()


def test_broker_outage_of_30_s_loses_nothing(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        topics = Topics(broker)
        cfg = tmp_path / "config.yaml"
        port = write_config(cfg, broker, topics, tmp_path / "state", learner=SLOW)
        batch = tasks("o", 3, n_train=32)
        produce(broker, topics.tasks, batch)
        daemon = Daemon(cfg, tmp_path / "daemon.log", port).start()
        try:
            daemon.wait_log(r"task o-0: learned v1")
            broker.stop()
            time.sleep(30)
            assert daemon.proc is not None and daemon.proc.poll() is None
            broker.start()
            rows = learned_results(broker, topics.results, [t for t, _ in batch], timeout=400)
            learned_once(rows, [t for t, _ in batch], daemon)
            wait_committed(broker, topics, 3, timeout=120)
        finally:
            assert daemon.stop() == 0
    finally:
        broker.stop()


def test_two_daemons_share_partitions_and_one_takes_over(broker: KafkaBroker, tmp_path: Path) -> None:
    topics = Topics(broker, partitions=4)
    cfg_a, cfg_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    # one torch thread each: two daemons on two cores, so that neither misses its group's
    # heartbeats (a member dropped mid-task has its commit refused, and the other daemon,
    # with a state of its own, learns that task again: at-least-once, not what is tested)
    learner = SLOW.replace("{train:", "{model: {threads: 1}, train:")
    port_a = write_config(cfg_a, broker, topics, tmp_path / "state-a", learner=learner,
                          session_timeout_ms=20000)
    port_b = write_config(cfg_b, broker, topics, tmp_path / "state-b", learner=learner,
                          session_timeout_ms=20000)
    a = Daemon(cfg_a, tmp_path / "a.log", port_a).start()
    b = Daemon(cfg_b, tmp_path / "b.log", port_b).start()
    try:
        a.wait_log(r"partitions assigned: \['")
        b.wait_log(r"partitions assigned: \['")
        batch = tasks("s", 8, n_train=24)
        produce(broker, topics.tasks, batch)
        a.wait_log(r"task s-\d+: learned v1")
        a.wait_log(r"task s-\d+: train\n", count=2)  # inside its second task's train phase
        assert a.stop(signal.SIGKILL) == -signal.SIGKILL  # killed in the middle of a task
        rows = learned_results(broker, topics.results, [t for t, _ in batch], timeout=600)
        logs = a.text() + b.text()
        rebalances = [line for line in logs.splitlines()
                      if "rebalance" in line or "partitions" in line or "Heartbeat" in line]
        given_up = len(GIVEN_UP.findall(logs))
        assert_learned_once(rows, [t for t, _ in batch], "\n".join(rebalances), given_up)
        wait_committed(broker, topics, 8)
        learned_by_a = a.text().count(": learned v1")
        learned_by_b = b.text().count(": learned v1")
        assert learned_by_a >= 1 and learned_by_b >= 1
        assert 8 <= learned_by_a + learned_by_b <= 8 + given_up
    finally:
        b.stop()
        if a.proc is not None and a.proc.poll() is None:
            a.stop(signal.SIGKILL)


def test_a_record_that_kills_the_daemon_is_quarantined_after_max_attempts(
    broker: KafkaBroker, tmp_path: Path,
) -> None:
    topics, cfg, state, port, batch = slow_stream(broker, tmp_path, "q", 2)
    for attempt in range(1, 4):  # it kills the process at step 2 of its training every time
        daemon = Daemon(cfg, tmp_path / f"run{attempt}.log", port, crash_at=("q-0", 2)).start()
        assert daemon.proc is not None and daemon.proc.wait(timeout=300) == -signal.SIGKILL
        record, = (state / "attempts").glob("*.attempts")
        assert json.loads(record.read_text())["attempts"] == attempt
        assert json.loads(record.read_text())["ref"] == f"{topics.tasks}/0/0"
    last = Daemon(cfg, tmp_path / "last.log", port).start()
    try:
        rows = results(broker, topics.results, 2)
        assert [(r["task_id"], r["status"]) for r in rows] == [("", "invalid"), ("q-1", "learned")]
        error = rows[0]["error"]
        assert re.fullmatch(r"crashed 3 times at the same point: last in train step 2/\d+ of "
                            r"task q-0", error), error
        (dead,) = read_topic(broker, topics.dlq, 1)
        assert dead.value == batch[0][1]  # the original bytes, with the reason and the count
        headers = dict(dead.headers)
        assert headers["synlearner.error"].startswith(b"crashed 3 times")
        assert headers["synlearner.source.offset"] == b"0"
        wait_committed(broker, topics, 2)
        assert last.metric('synlearner_dead_letters_total{reason="crashed"}') == 1
    finally:
        assert last.stop() == 0
    assert list((state / "attempts").glob("*.attempts")) == []
