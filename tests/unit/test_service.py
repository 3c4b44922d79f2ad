"""The service's signal handling and health under a systemd watchdog (no systemd needed)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from synlearner.daemon.build import Parts
from synlearner.daemon.service import Service
from synlearner.stream import InMemorySource
from tests.unit.doubles import CentroidLearner, unit_config, unit_daemon


def service(tmp_path: Path, **overrides: object) -> Service:
    cfg = unit_config(tmp_path, **overrides)
    daemon = unit_daemon(cfg, InMemorySource(), CentroidLearner())
    return Service(cfg, Parts(daemon, daemon.metrics, daemon.memory))


def test_a_signal_that_lands_while_the_main_thread_holds_the_stop_lock_does_not_deadlock(
    tmp_path: Path,
) -> None:
    svc = service(tmp_path)
    done = threading.Event()

    def deliver() -> None:  # what the interpreter does: the handler, on this same thread
        svc._on_signal(signal.SIGHUP, None)
        svc._on_signal(signal.SIGTERM, None)
        done.set()

    with svc.daemon._stop._cond:  # the main thread inside Event.wait/clear, holding its lock
        deliver()
        assert done.is_set()  # the handler returned while the lock was held
        assert not svc.daemon.stopping
    deadline = time.monotonic() + 5
    while not svc.daemon.stopping:  # the stop lands once the lock is released
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert svc.daemon.gauges_due


def test_gauge_refreshes_asked_for_during_a_task_run_once(tmp_path: Path) -> None:
    svc = service(tmp_path)
    calls = []
    svc.daemon.refresh_gauges = lambda: calls.append(1)  # type: ignore[method-assign]
    for _ in range(12):  # a scheduler tick every 15 s through a three-minute task
        svc._gauges_due()
    svc.daemon._run_jobs()
    svc.daemon._run_jobs()
    assert calls == [1]


def test_the_stall_threshold_follows_the_systemd_watchdog(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert service(tmp_path / "a").stall_after_s == 900
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")  # WatchdogSec=120
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    svc = service(tmp_path / "b")
    assert svc.stall_after_s == 120
    svc.daemon.heartbeat = time.monotonic() - 119
    assert svc.healthy()
    svc.daemon.heartbeat = time.monotonic() - 121  # a step hung for longer: no more pings
    assert not svc.healthy()


def test_sighup_applies_the_live_settings_and_refuses_the_rest_by_name(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import yaml

    from synlearner.daemon.config import load_config

    path = tmp_path / "config.yaml"
    settings = {"state_dir": str(tmp_path / "state"), "stream": {"kind": "memory"},
                "daemon": {"http": {"enabled": False}, "drain": True}}
    path.write_text(yaml.safe_dump(settings))
    cfg = load_config(path, env={})
    daemon = unit_daemon(cfg, InMemorySource(), CentroidLearner())
    svc = Service(cfg, Parts(daemon, daemon.metrics, daemon.memory),
                  reload=lambda: load_config(path, env={}))
    settings["stream"] |= {"max_attempts": 9, "limits": {"max_labels": 8}}
    settings["daemon"] |= {"stall_after_s": 30.0, "http": {"enabled": False, "port": 9999}}
    settings["learner"] = {"train": {"lr": 0.5}}
    path.write_text(yaml.safe_dump(settings))
    svc._on_signal(signal.SIGHUP, None)
    with caplog.at_level("INFO", logger="synlearner.daemon"):
        daemon._run_jobs()
    assert daemon.cfg.stream.max_attempts == 9 and daemon.settler.max_attempts == 9
    assert daemon.cfg.stream.limits.max_labels == 8 and daemon.ctx.cfg is daemon.cfg
    assert svc.stall_after_s == 30.0
    assert daemon.cfg.daemon.http.port == 9464 and daemon.cfg.learner.train.lr == cfg.learner.train.lr
    refused = [r.getMessage() for r in caplog.records if "restart to apply" in r.getMessage()]
    assert [m.split(" ")[2] for m in refused] == ["daemon.http.port", "learner.train.lr"]
    path.write_text("stream: [")  # not YAML: nothing changes
    daemon.reload_due = True
    daemon._run_jobs()
    assert daemon.cfg.stream.max_attempts == 9
    path.unlink()  # the file removed: logged, nothing changes, the loop goes on
    daemon.reload_due = True
    daemon._run_jobs()
    assert daemon.cfg.stream.max_attempts == 9
    reloads = daemon.metrics.config_reloads
    assert reloads.labels(outcome="refused")._value.get() == 1
    assert reloads.labels(outcome="invalid")._value.get() == 2


def test_the_daemon_serves_the_api_and_is_ready_only_while_running(tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.request

    from tests.unit.test_loop import task_raw

    cfg = unit_config(tmp_path, **{"daemon.http.enabled": True, "daemon.http.port": 0,
                                   "daemon.api.port": 0})
    daemon = unit_daemon(cfg, InMemorySource([task_raw("a")]), CentroidLearner())
    daemon.run()  # learns "a" and drains
    svc = Service(cfg, Parts(daemon, daemon.metrics, daemon.memory))

    def get(port: int, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    assert svc.http is None and svc.api is None and not svc.ready()
    svc.start()
    try:
        assert svc.api is not None and svc.http is not None
        api, metrics = svc.api.port, svc.http.port
        assert get(api, "/readyz")[0] == 200 and get(metrics, "/readyz")[0] == 200
        status, body = get(api, "/v1/tasks")  # from the state: no model is loaded for it
        assert status == 200 and [t["task_id"] for t in json.loads(body)] == ["a"]
        assert b"synlearner_tasks_learned_total 1.0" in get(api, "/metrics")[1]
        daemon.settler.held = True  # holding the stream on a failure: not ready, still alive
        assert get(api, "/readyz")[0] == 503 and get(metrics, "/readyz")[0] == 503
        assert get(metrics, "/healthz")[0] == 200
        daemon.settler.held = False
        assert get(api, "/readyz")[0] == 200
        daemon.stop()  # stopping: no longer ready (a load balancer takes it out)
        assert get(api, "/readyz")[0] == 503 and get(metrics, "/readyz")[0] == 503
    finally:
        svc.close()


def test_a_port_in_use_turns_the_api_off_and_the_daemon_goes_on(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cfg = unit_config(tmp_path, **{"daemon.api.port": port})
        daemon = unit_daemon(cfg, InMemorySource(), CentroidLearner())
        svc = Service(cfg, Parts(daemon, daemon.metrics, daemon.memory))
        svc.start()
        try:
            assert svc.api is None and svc.ready()
        finally:
            svc.close()
