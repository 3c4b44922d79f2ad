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


def test_a_slow_start_extends_the_start_timeout_until_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from synlearner.daemon.notify import extending_start

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        with extending_start(every_s=0.05, by_s=3):
            time.sleep(0.3)
        got = []
        server.settimeout(0.2)
        try:
            while True:
                got.append(server.recv(64))
        except TimeoutError:
            pass
        assert len(got) >= 3 and set(got) == {b"EXTEND_TIMEOUT_USEC=3000000"}
        time.sleep(0.2)  # and none once the start is done
        with pytest.raises(TimeoutError):
            server.recv(64)
