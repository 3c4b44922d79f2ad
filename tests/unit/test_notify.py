from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from synlearner.daemon.notify import sd_notify, watchdog_interval_s


def test_notify_reaches_a_real_datagram_socket(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sd_notify("READY=1")
        assert server.recv(64) == b"READY=1"
        monkeypatch.setenv("NOTIFY_SOCKET", f"@synlearner-test-{os.getpid()}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
            abstract.bind(f"\0synlearner-test-{os.getpid()}")
            assert sd_notify("WATCHDOG=1")
            assert abstract.recv(64) == b"WATCHDOG=1"


def test_notify_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None
