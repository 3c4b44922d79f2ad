"""A learning method is one module that registers itself: a toy method registered from this
file alone (no project file names it) runs inside a real daemon on the real embedded model
for a task that names it, and its figures reach the result, the state after a restart, the
report and /metrics; a task naming a method that does not exist is a dead letter."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Gauge

from synlearner.daemon.build import build_daemon
from synlearner.daemon.config import load_config
from synlearner.daemon.http import HttpServer
from synlearner.daemon.state import State
from synlearner.daemon.tools.demo import demo_stream
from synlearner.daemon.tools.report import build_report, render_text
from synlearner.learner.base import LearnOutcome
from synlearner.learner.method import REGISTRY, Figures, Method, MethodContext, register
from synlearner.stream import JsonlResultSink, SpoolPublisher
from synlearner.stream.schema import Task

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


class RecordCounter(Method):
    """Counts the memory's records before the task trains, and keeps that with the task's
    final score."""

    name = "record_counter"
    kinds = frozenset({"classification"})

    def recall(self, task: Task, ctx: MethodContext) -> int:
        return int(ctx.memory.counts()["experience"])

    def after_evaluate(self, task: Task, outcome: LearnOutcome, recalled: Any,
                       ctx: MethodContext) -> Figures:
        return {"records_before": recalled, "final": outcome.final}

    def metrics(self, registry: Any) -> Callable[[str, Figures], None]:
        gauge = Gauge("synlearner_record_counter_records", "Memory records before the last task "
                      "that counted them", registry=registry)
        return lambda column, figures: gauge.set(figures["records_before"])

    def report(self, tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        return [f"{t['task']} started with {t['extras']['record_counter']['records_before']} "
                "records" for t in tasks if "record_counter" in t["extras"]]


@pytest.fixture
def toy() -> Iterator[None]:
    register(RecordCounter)
    try:
        yield
    finally:
        REGISTRY.pop(RecordCounter.name)


def test_a_method_registered_from_outside_runs_and_its_figures_go_everywhere(
    toy: None, tmp_path: Path,
) -> None:
    cfg = load_config(ROOT / "configs" / "default.yaml", {
        "state_dir": str(tmp_path / "state"), "daemon.http.enabled": False, "daemon.drain": True,
        "learner.train": {"max_steps": 8}, "learner.init_probe_steps": 0,
        "stream.poll_timeout_s": 0.2}, env={})
    first, second, third = demo_stream(seed=5, n_train=24, n_eval=16)[:3]
    second["methods"] = ["record_counter"]
    third["methods"] = ["no_such_method"]
    publisher = SpoolPublisher(cfg.spool_dir)
    for msg in (first, second, third):
        publisher.submit(json.dumps(msg).encode(), msg["task_id"])
    parts = build_daemon(cfg)
    try:
        parts.daemon.run()
        http = HttpServer("127.0.0.1", 0, parts.metrics.registry, dict, lambda: True)
        http.start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http.port}/metrics", timeout=10) as r:
                exposition = r.read().decode()
        finally:
            http.stop()
    finally:
        parts.close()
    results = {r["task_id"]: r for r in JsonlResultSink(cfg.spool_dir / "results.jsonl").read()}
    assert [results[t["task_id"]]["status"] for t in (first, second, third)] == [
        "learned", "learned", "invalid"]
    assert "no_such_method" in results[third["task_id"]]["error"]
    figures = results[second["task_id"]]["extras"]["record_counter"]
    assert figures["records_before"] >= 24  # the first task's train examples, at least
    assert figures["final"] == results[second["task_id"]]["metrics"]["final"]
    assert "extras" not in results[first["task_id"]]  # it named no method with figures
    assert f"synlearner_record_counter_records {float(figures['records_before'])}" in exposition

    restarted = build_daemon(cfg)  # the state after a restart keeps them
    restarted.close()
    state = State.read(cfg.state_dir)
    entry = state.latest(second["task_id"])
    assert entry is not None and entry.extras == {"record_counter": figures}
    text = render_text(build_report(state))
    assert f"{second['task_id']} started with {figures['records_before']} records" in text
