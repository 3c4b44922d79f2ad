"""The metrics port (daemon/http.py) under clients that never finish their request, or
that hold every thread that answers.

Speed is measured in bench/, never here: the one deadline these tests keep is the
requirement's (/healthz and /readyz within 1 s while the port is saturated or its threads
held). "At once" elsewhere means before whatever it would otherwise have waited for (a
slow client's request timeout, a held thread), with a wide margin.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from synlearner.daemon.config import HTTP_REQUEST_TIMEOUT_S
from synlearner.daemon.http import CONNECTION_THREAD, HttpServer, is_loopback
from tests.unit.slow_clients import closed_by_peer, connect, probe, saturated, trickle_until_closed

TIMEOUT_S = 0.5
CAP = 8
TOKEN = "metrics-token-0123456789"
PROBE_S = 1.0  # the requirement: /healthz and /readyz answer within a second, whatever holds the port


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


def answers_in_time(port: int, path: str, within_s: float) -> None:
    """`path` answers 200 within `within_s` (the probe's own timeout is wider, so that a
    late answer fails here with its time, not as a socket timeout)."""
    status, took, _ = probe(port, path, timeout_s=within_s + 5)
    assert status == 200 and took < within_s, (path, status, took)


def half_request(port: int) -> socket.socket:
    sock = connect(port)
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


def test_half_open_connections_hold_no_thread_and_are_closed_at_the_deadline(
        server: HttpServer) -> None:
    socks = [half_request(server.port) for _ in range(50)]
    try:
        time.sleep(0.1)
        assert held() == 0  # the heads are read by one thread, for all connections
        for sock in socks:  # each is closed on its deadline; none is left hanging
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1024) == b""
    finally:
        for sock in socks:
            sock.close()
    answers_in_time(server.port, "/healthz", PROBE_S)


def test_a_trickled_head_is_cut_off_when_its_whole_time_is_up() -> None:
    """A byte every 0.3 s never waits a whole second for a read, yet the head as a whole
    has 1 s: a per-read timeout would let it hold the connection forever."""
    srv = HttpServer("127.0.0.1", 0, CollectorRegistry(), dict, lambda: True, request_timeout_s=1.0)
    srv.start()
    try:
        closed_after = trickle_until_closed(srv.port, every_s=0.3)
        # closed when its 1 s is up, not before; a per-read timeout (each byte comes within
        # 0.3 s) would let the trickle, 17 s in all, run to its end (closed_after None)
        assert closed_after is not None and 0.9 <= closed_after < 5, closed_after
    finally:
        srv.stop()


def test_past_max_pending_the_connection_waiting_longest_is_closed() -> None:
    srv = HttpServer("127.0.0.1", 0, CollectorRegistry(), dict, lambda: True,
                     request_timeout_s=30, max_pending=4)
    srv.start()
    socks = [half_request(srv.port) for _ in range(4)]
    try:
        time.sleep(0.2)
        assert not any(closed_by_peer(s) for s in socks)
        socks.append(half_request(srv.port))
        # well before its own request timeout (30 s)
        assert wait_for(lambda: closed_by_peer(socks[0]), within_s=10)
        assert not any(closed_by_peer(s) for s in socks[1:])
        answers_in_time(srv.port, "/readyz", PROBE_S)
    finally:
        for sock in socks:
            sock.close()
        srv.stop()


def test_requests_over_the_cap_get_503_at_once_and_probes_have_threads_of_their_own() -> None:
    release = threading.Event()

    def slow_status() -> dict[str, str]:
        release.wait(10)
        return {"phase": "idle"}

    srv = HttpServer("127.0.0.1", 0, CollectorRegistry(), slow_status, lambda: True,
                     request_timeout_s=5, max_connections=2)
    srv.start()
    answers: list[int] = []
    clients = [threading.Thread(target=lambda: answers.append(probe(srv.port, "/status", timeout_s=15)[0]))
               for _ in range(2)]
    try:
        for c in clients:
            c.start()
        assert wait_for(lambda: held() == 2)
        # refused, not queued for a thread: answered while both still hold theirs (until
        # released, or 10 s), well before either would free one
        status, took, body = probe(srv.port, "/status", timeout_s=15)
        assert (status, body) == (503, b"busy\n") and took < 5 and not answers
        for path in ("/healthz", "/readyz"):
            answers_in_time(srv.port, path, PROBE_S)
        assert not answers  # the probes did not wait for those threads either
    finally:
        release.set()
        for c in clients:
            c.join(timeout=15)
        srv.stop()
    assert answers == [200, 200]


def test_probes_and_metrics_answer_within_a_second_while_slow_clients_fill_the_port() -> None:
    """70 idle connections and 32 that trickle a byte every 3 s, against the defaults
    (32 connections answered at once, 5 s to send a request head): the probes within their
    second; /metrics before that request timeout, the least it would wait if the slow
    clients held the threads that answer (they reconnect when cut off)."""
    srv = HttpServer("127.0.0.1", 0, CollectorRegistry(), dict, lambda: True)
    srv.start()
    try:
        with saturated(srv.port, idle=70, trickle=32):
            for _ in range(3):
                for path in ("/healthz", "/readyz"):
                    answers_in_time(srv.port, path, PROBE_S)
                answers_in_time(srv.port, "/metrics", HTTP_REQUEST_TIMEOUT_S)
                time.sleep(1)
    finally:
        srv.stop()


def test_a_token_guards_metrics_and_status_but_never_the_probes() -> None:
    srv = HttpServer("127.0.0.1", 0, CollectorRegistry(), lambda: {"phase": "idle"},
                     lambda: True, token=TOKEN)
    srv.start()
    try:
        for path in ("/metrics", "/status"):
            assert probe(srv.port, path)[0] == 401
            assert probe(srv.port, path, token="wrong-token-0123456789")[0] == 401
            assert probe(srv.port, path, token=TOKEN)[0] == 200
        for path in ("/healthz", "/readyz"):
            assert probe(srv.port, path)[0] == 200
    finally:
        srv.stop()


def test_binding_beyond_loopback_needs_a_token() -> None:
    HttpServer("127.0.0.1", 0, CollectorRegistry(), dict, lambda: True).stop()
    with pytest.raises(ValueError, match="daemon.http.token"):
        HttpServer("0.0.0.0", 0, CollectorRegistry(), dict, lambda: True)
    HttpServer("0.0.0.0", 0, CollectorRegistry(), dict, lambda: True, token=TOKEN).stop()


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
    with pytest.raises(ValueError):
        HttpServer("127.0.0.1", 0, CollectorRegistry(), dict, lambda: True, max_pending=0)
