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
