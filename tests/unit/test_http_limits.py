"""The HTTP server under clients that never finish their request."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from synlearner.daemon.http import CONNECTION_THREAD, HttpServer, is_loopback

TIMEOUT_S = 0.5
CAP = 8


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def wait_for(check: Callable[[], bool], within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def held() -> int:
    """Handler threads alive now, over all servers."""
    return sum(t.name == CONNECTION_THREAD for t in threading.enumerate())


def half_request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    return sock


@pytest.fixture
def server() -> Iterator[HttpServer]:
    assert wait_for(lambda: held() == 0)
    srv = HttpServer("127.0.0.1", 0, CollectorRegistry(), lambda: {}, lambda: True,
                     request_timeout_s=TIMEOUT_S, max_connections=CAP)
    srv.start()
    yield srv
    srv.stop()


def test_half_open_connections_are_capped_and_time_out(server: HttpServer) -> None:
    socks = [half_request(server.port) for _ in range(50)]
    busy = 0
    try:
        assert held() <= CAP
        for sock in socks:  # each is answered 503 or closed on timeout; none is left hanging
            sock.settimeout(5)
            try:
                reply = sock.recv(1024)
            except ConnectionResetError:
                reply = b""
            assert reply == b"" or reply.startswith(b"HTTP/1.0 503")
            busy += reply.startswith(b"HTTP/1.0 503")
            assert held() <= CAP
    finally:
        for sock in socks:
            sock.close()
    assert busy >= 1
    assert wait_for(lambda: held() == 0)  # the threads are released
    assert get(f"http://127.0.0.1:{server.port}/healthz") == 200


def test_healthz_answers_beside_slow_clients_under_the_cap(server: HttpServer) -> None:
    socks = [half_request(server.port) for _ in range(CAP // 2)]
    try:
        started = time.monotonic()
        assert get(f"http://127.0.0.1:{server.port}/healthz") == 200
        assert time.monotonic() - started < 2 * TIMEOUT_S + 2
    finally:
        for sock in socks:
            sock.close()


def test_over_the_cap_is_refused_at_once_then_served_again(server: HttpServer) -> None:
    socks = [half_request(server.port) for _ in range(CAP)]
    try:
        assert wait_for(lambda: held() == CAP, within_s=TIMEOUT_S)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            try:
                reply = extra.recv(1024)
            except ConnectionResetError:
                reply = b""
        # busy (or, had timeouts just freed the slots, served)
        assert reply == b"" or reply.startswith((b"HTTP/1.0 503", b"HTTP/1.0 200"))
        assert wait_for(lambda: get(f"http://127.0.0.1:{server.port}/healthz") == 200)
    finally:
        for sock in socks:
            sock.close()


def test_binding_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="synlearner.daemon"):
        HttpServer("127.0.0.1", 0, CollectorRegistry(), dict, lambda: True).stop()
        assert not caplog.records
        HttpServer("0.0.0.0", 0, CollectorRegistry(), dict, lambda: True).stop()
    assert any("not a loopback" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("", False), ("::", False), ("10.0.0.5", False),
    ("example.org", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_settings_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HttpServer("127.0.0.1", 0, CollectorRegistry(), dict, lambda: True, max_connections=0)
