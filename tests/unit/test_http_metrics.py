from __future__ import annotations

import json
import urllib.request

from synlearner.daemon.http import HttpServer
from synlearner.daemon.metrics import MAX_TASK_LABELS, Metrics


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_endpoints_serve_metrics_status_and_health() -> None:
    metrics = Metrics()
    metrics.tasks_learned.inc(2)
    metrics.set_transfer({"acc": 0.9, "bwt": -0.01, "fwt": 0.05, "forgetting": 0.02},
                         {"a": 0.8, "b": 1.0})
    metrics.set_memory({"experience": 10, "error": 3, "tasks": 2})
    metrics.task_duration.labels(phase="train").observe(3.0)
    healthy = [True]
    server = HttpServer("127.0.0.1", 0, metrics.registry, lambda: {"phase": "idle"},
                        lambda: healthy[0])
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        code, body = get(base + "/metrics")
        text = body.decode()
        assert code == 200
        for line in ["synlearner_tasks_learned_total 2.0", "synlearner_acc_ratio 0.9",
                     'synlearner_task_accuracy_ratio{eval_task="b"} 1.0',
                     'synlearner_memory_records{kind="error"} 3.0',
                     'synlearner_task_phase_duration_seconds_bucket{le="5.0",phase="train"} 1.0']:
            assert line in text
        assert json.loads(get(base + "/status")[1]) == {"phase": "idle"}
        assert get(base + "/healthz") == (200, b"ok\n")
        healthy[0] = False
        assert get(base + "/healthz")[0] == 503
        assert get(base + "/nope")[0] == 404
    finally:
        server.stop()


def test_task_accuracy_label_set_is_bounded() -> None:
    metrics = Metrics()
    latest = {f"t{i}": 0.5 for i in range(MAX_TASK_LABELS + 50)}
    metrics.set_transfer({"acc": 0.5, "bwt": 0.0, "fwt": 0.0, "forgetting": 0.0}, latest)
    samples = list(metrics.task_accuracy.collect())[0].samples
    assert len(samples) == MAX_TASK_LABELS


def test_per_task_accuracy_series_stay_capped_as_tasks_accumulate() -> None:
    from synlearner.daemon.metrics import MAX_TASK_LABELS, Metrics

    metrics = Metrics()
    summary = {"acc": 0.5, "bwt": 0.0, "fwt": 0.0, "forgetting": 0.0}
    for n in (10, MAX_TASK_LABELS + 50, 2 * MAX_TASK_LABELS):
        metrics.set_transfer(summary, {f"task-{i}": 0.5 for i in range(n)})
        series = [s for m in metrics.task_accuracy.collect() for s in m.samples]
        assert len(series) == min(n, MAX_TASK_LABELS)
        assert series[-1].labels["eval_task"] == f"task-{n - 1}"


def test_self_training_rounds_are_exported_for_the_latest_tasks_only() -> None:
    from prometheus_client import generate_latest

    from synlearner.learner.methods.self_train import MAX_TASKS as MAX_SELFTRAIN_TASKS

    metrics = Metrics()

    def rounds(balance: float) -> list[dict[str, float]]:
        return [{"round": i + 1, "balance": balance, "pass_at_1": 0.25, "pass_at_k": 0.5,
                 "temperature": 0.9, "tau": 0.5, "eval_accuracy": 0.4, "samples": 100.0}
                for i in range(2)]

    observe = metrics.methods["self_train"]  # the method's own metrics
    observe("arith", {"rounds": rounds(0.625)})
    text = generate_latest(metrics.registry).decode()
    assert 'synlearner_selftrain_balance_ratio{round="2",task="arith"} 0.625' in text
    assert 'synlearner_selftrain_temperature{round="1",task="arith"} 0.9' in text
    assert "synlearner_selftrain_samples_total 200.0" in text
    for i in range(MAX_SELFTRAIN_TASKS + 5):
        observe(f"t{i}", {"rounds": rounds(0.5)})
    text = generate_latest(metrics.registry).decode()
    series = [line for line in text.splitlines()
              if line.startswith("synlearner_selftrain_balance_ratio{")]
    assert len(series) == 2 * MAX_SELFTRAIN_TASKS
    assert 'task="arith"' not in text
