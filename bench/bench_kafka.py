"""Kafka ingest rate and publish-to-learned latency, against a real local broker.

Ingest: task messages validated and dispatched per second with training excluded: a stream
of redeliveries of an already-learned task (validate, idempotence check, result, commit)
and a stream of invalid messages (validate, dead-letter topic, commit). The same duplicate
stream through the spool directory is the baseline in the same run.
Latency: from the producer's send to the committed result, for small tasks.

    bash .ci/tools.sh && python bench/bench_kafka.py [--messages 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parents[1]))  # the clone: tests/kafka_broker/broker.py

from synlearner.daemon.build import (  # noqa: E402
    build_daemon,
    build_learners,
    build_publisher,
    setup_logging,
)
from synlearner.daemon.config import load_config  # noqa: E402
from synlearner.daemon.tools.demo import demo_stream  # noqa: E402
from synlearner.stream import SpoolPublisher, TaskPublisher  # noqa: E402
from tests.kafka_broker.broker import KafkaBroker  # noqa: E402


def small_task(task_id: str) -> bytes:
    msg = dict(demo_stream(seed=2, n_train=16, n_eval=8)[0])
    msg["task_id"] = task_id
    return json.dumps(msg).encode()


def wait_for(done, timeout: float = 600.0) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    while not done():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the daemon did not finish in time")
        time.sleep(0.01)
    return time.perf_counter() - t0


def produce(publisher: TaskPublisher, messages: list[tuple[str, bytes]]) -> None:
    for key, raw in messages:
        publisher.submit(raw, key)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300)
    args = ap.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        broker = KafkaBroker(root / "kafka")
        broker.start()
        try:
            for topic in ("tasks", "results", "dlq"):
                broker.create_topic(topic, 1)
            overrides = {
                "state_dir": str(root / "state"), "daemon.http.enabled": False,
                "stream.kind": "kafka", "stream.poll_timeout_s": 0.05,
                "stream.kafka": {"bootstrap_servers": [broker.bootstrap], "topic": "tasks",
                                 "results_topic": "results", "dead_letter_topic": "dlq",
                                 "group_id": "bench"},
                "learner.train": {"max_steps": 6, "batch_size": 8},
                "daemon.log_level": "WARNING",
            }
            cfg = load_config(None, overrides, env={})
            setup_logging(cfg)
            learners = build_learners(cfg)
            publisher = build_publisher(cfg)
            parts = build_daemon(cfg, learners)
            d, m = parts.daemon, parts.metrics
            worker = threading.Thread(target=d.run, daemon=True)
            worker.start()

            # latency: three small tasks, one at a time
            latencies = []
            for i in range(3):
                sent = time.time()
                produce(publisher, [(f"lat-{i}", small_task(f"lat-{i}"))])
                wait_for(lambda i=i: m.stream_committed._value.get() >= i + 1)
                latencies.append(time.time() - sent)

            committed = m.stream_committed._value.get()
            produce(publisher, [("lat-0", small_task("lat-0"))] * n)
            dup_s = wait_for(lambda: m.stream_committed._value.get() >= committed + n)
            committed = m.stream_committed._value.get()
            produce(publisher, [(f"bad-{i}", b"{not json") for i in range(n)])
            bad_s = wait_for(lambda: m.stream_committed._value.get() >= committed + n)
            d.stop()
            worker.join()
            parts.close()
            publisher.close()

            spool_cfg = load_config(None, {**overrides, "stream.kind": "spool"}, env={})
            sparts = build_daemon(spool_cfg, learners)
            pub = SpoolPublisher(spool_cfg.spool_dir)
            for _ in range(n):
                pub.submit(small_task("lat-0"), "lat-0")
            sworker = threading.Thread(target=sparts.daemon.run, daemon=True)
            t0 = time.perf_counter()
            sworker.start()
            spool_s = wait_for(lambda: sparts.metrics.tasks_duplicate._value.get() >= n)
            spool_s = time.perf_counter() - t0
            sparts.daemon.stop()
            sworker.join()
            sparts.close()
        finally:
            broker.stop()
    print(f"ingest, {n} messages each (training excluded), 1 partition, 2 cores:")  # noqa: T201
    print(f"  kafka duplicates   {n / dup_s:7.1f} msg/s   ({dup_s / spool_s:.2f}x the spool's time)")  # noqa: T201
    print(f"  kafka dead letters {n / bad_s:7.1f} msg/s")  # noqa: T201
    print(f"  spool duplicates   {n / spool_s:7.1f} msg/s   (baseline)")  # noqa: T201
    print("publish-to-learned, small task (16 train / 8 eval examples, 6 steps): "  # noqa: T201
          f"median {statistics.median(latencies):.1f} s, runs {[round(x, 1) for x in latencies]}")


if __name__ == "__main__":
    main()
