"""HTTP endpoints on 127.0.0.1 by default: /metrics, /healthz, /readyz, /status.

One thread accepts the connections and reads their request heads, all at once (a selector),
so a client that connects and sends nothing, or trickles a byte at a time, holds no thread:
each connection has `request_timeout_s` in all to send its head, and at most `max_pending`
wait so (past that, the one that has waited longest is closed). A complete request is then
answered on a thread of its own: a probe (/healthz, /readyz) on one of `PROBE_THREADS` kept
for probes, anything else on one of `max_connections` (over that: 503 at once).

With a token, /metrics and /status answer 401 without `Authorization: Bearer <token>`; the
probes never ask for it. Beyond loopback there must be a token: /status tells what the
daemon is doing, and the metrics name its tasks.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from synlearner.daemon.config import (
    HTTP_MAX_CONNECTIONS,
    HTTP_MAX_PENDING,
    HTTP_REQUEST_TIMEOUT_S,
    is_loopback,
)

log = logging.getLogger("synlearner.daemon")
CONNECTION_THREAD = "http-connection"
PROBES = ("/healthz", "/readyz")
PROTECTED = ("/metrics", "/status")  # ask for the token, when there is one
PROBE_THREADS = 4  # probes answered at once, beside `max_connections` other requests
MAX_HEAD_BYTES = 16384  # request line and headers; only GET is served, so no body follows
POLL_S = 0.25  # the reader's longest sleep (how soon it sees `stop`)

_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n")
_TOO_LARGE = (b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
              b"Connection: close\r\n\r\n")

__all__ = ["CONNECTION_THREAD", "HttpServer", "is_loopback"]


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client may be gone already
        sock.shutdown(socket.SHUT_WR)  # what was written goes out before the close
    sock.close()


def _send_and_close(sock: socket.socket, reply: bytes) -> None:
    """A short reply on a socket that is not read from again (it fits the send buffer)."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(reply)
    _close(sock)


def _path(head: bytes) -> str:
    """The request's path, without its query."""
    line = head.split(b"\n", 1)[0].split()
    return line[1].split(b"?", 1)[0].decode("latin-1") if len(line) > 1 else ""


@dataclass
class _Pending:
    address: Any
    deadline: float
    head: bytearray = field(default_factory=bytearray)


class _HeadReader:
    """Accepts connections and reads their request heads on one thread, with a deadline per
    connection for the whole head; hands each complete head, with the connection, to
    `complete(sock, address, head)`, which owns the socket from then on."""

    def __init__(self, host: str, port: int, timeout_s: float, max_pending: int,
                 complete: Callable[[socket.socket, Any, bytes], None]) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pending: dict[socket.socket, _Pending] = {}  # oldest first: first to expire
        self._timeout_s, self._max_pending, self._complete = timeout_s, max_pending, complete
        self._stopping = threading.Event()
        self._closed = False

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                oldest = next(iter(self._pending.values()), None)
                wait_s = POLL_S if oldest is None else oldest.deadline - time.monotonic()
                for key, _ in self._selector.select(min(POLL_S, max(0.0, wait_s))):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif isinstance(key.fileobj, socket.socket) and key.fileobj in self._pending:
                        self._read(key.fileobj)
                self._expire()
        finally:
            self.close()

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sock in list(self._pending):
            self._drop(sock)
        self._selector.close()
        self._listener.close()

    def _accept(self) -> None:
        for _ in range(64):  # then read what the others sent, and come back
            try:
                sock, address = self._listener.accept()
            except OSError:  # none left (BlockingIOError), or no file descriptor to be had
                return
            sock.setblocking(False)
            if len(self._pending) >= self._max_pending:
                self._drop(next(iter(self._pending)))
            self._pending[sock] = _Pending(address, time.monotonic() + self._timeout_s)
            self._selector.register(sock, selectors.EVENT_READ)

    def _read(self, sock: socket.socket) -> None:
        pending = self._pending[sock]
        try:
            chunk = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away
            self._drop(sock)
            return
        pending.head += chunk
        start = max(0, len(pending.head) - len(chunk) - 3)
        if pending.head.find(b"\r\n\r\n", start) >= 0 or pending.head.find(b"\n\n", start) >= 0:
            self._selector.unregister(sock)
            del self._pending[sock]
            self._complete(sock, pending.address, bytes(pending.head))
        elif len(pending.head) > MAX_HEAD_BYTES:
            self._forget(sock)
            _send_and_close(sock, _TOO_LARGE)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            sock, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                return
            self._drop(sock)

    def _forget(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        del self._pending[sock]

    def _drop(self, sock: socket.socket) -> None:
        self._forget(sock)
        sock.close()


class HttpServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry,
        status: Callable[[], dict[str, Any]], healthy: Callable[[], bool],
        ready: Callable[[], bool] = lambda: True, request_timeout_s: float = HTTP_REQUEST_TIMEOUT_S,
        max_connections: int = HTTP_MAX_CONNECTIONS, max_pending: int = HTTP_MAX_PENDING,
        token: str | None = None,
    ) -> None:
        if request_timeout_s <= 0 or max_connections <= 0 or max_pending <= 0:
            raise ValueError("request_timeout_s, max_connections and max_pending must be positive")
        if token is None and not is_loopback(host):
            raise ValueError("http: a host beyond loopback needs a token (daemon.http.token): "
                             "/metrics and /status would be open to anyone who can reach it")
        expected = token.encode() if token is not None else None
        outer = self

        def authorized(value: str | None) -> bool:
            if expected is None:
                return True
            scheme, _, given = (value or "").partition(" ")
            # http.client reads header bytes as latin-1: encoding them back gives the bytes sent
            return (scheme.lower() == "bearer"
                    and hmac.compare_digest(given.strip().encode("latin-1", "replace"), expected))

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout_s  # each write of the answer (the head is in already)

            def __init__(self, sock: socket.socket, address: Any, head: bytes) -> None:
                self._head = head
                super().__init__(sock, address, None)  # type: ignore[arg-type]  # no socketserver

            def setup(self) -> None:
                super().setup()
                self.rfile.close()  # the socket's own reader: the head was read already
                self.rfile = io.BytesIO(self._head)

            def do_GET(self) -> None:  # noqa: N802  # name fixed by http.server
                path = self.path.split("?")[0]
                if path in PROTECTED and not authorized(self.headers.get("Authorization")):
                    outer._reply(self, 401, "text/plain", b"a bearer token is required\n",
                                 {"WWW-Authenticate": "Bearer"})
                elif path == "/metrics":
                    outer._reply(self, 200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    ok = healthy()
                    outer._reply(self, 200 if ok else 503, "text/plain", b"ok\n" if ok else b"stalled\n")
                elif path == "/readyz":
                    up = ready()
                    outer._reply(self, 200 if up else 503, "text/plain",
                                 b"ready\n" if up else b"not ready\n")
                elif path == "/status":
                    body = json.dumps(status(), indent=1, default=str).encode()
                    outer._reply(self, 200, "application/json", body)
                else:
                    outer._reply(self, 404, "text/plain", b"not found\n")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # base signature
                pass

        self._handler = Handler
        self._slots = threading.BoundedSemaphore(max_connections)
        self._probe_slots = threading.BoundedSemaphore(PROBE_THREADS)
        self._reader = _HeadReader(host, port, request_timeout_s, max_pending, self._dispatch)
        self._thread = threading.Thread(target=self._reader.run, name="http", daemon=True)

    def _dispatch(self, sock: socket.socket, address: Any, head: bytes) -> None:
        """A complete request head: answered on a thread, or 503 at once when all are busy."""
        slots = self._probe_slots if _path(head) in PROBES else self._slots
        if not slots.acquire(blocking=False):
            _send_and_close(sock, _BUSY)
            return
        try:
            threading.Thread(target=self._answer, args=(sock, address, head, slots),
                             name=CONNECTION_THREAD, daemon=True).start()
        except RuntimeError:  # no thread to be had
            slots.release()
            _send_and_close(sock, _BUSY)

    def _answer(self, sock: socket.socket, address: Any, head: bytes,
                slots: threading.BoundedSemaphore) -> None:
        try:
            sock.setblocking(True)
            self._handler(sock, address, head)
        except Exception:  # a client gone mid-answer, a write past its timeout
            log.debug("http: error serving %s", address, exc_info=True)
        finally:
            _close(sock)
            slots.release()

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, code: int, ctype: str, body: bytes,
               headers: dict[str, str] | None = None) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    @property
    def port(self) -> int:
        return self._reader.port

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._reader.stop()
            self._thread.join(timeout=5)
        self._reader.close()
