"""Clients that hold connections without finishing a request, for the HTTP servers' tests:
idle ones that connect and send nothing, and slow ones that trickle a request head one byte
at a time. Every loop here stops by itself."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator

HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"


def trickle_until_closed(port: int, every_s: float) -> float | None:
    """Send a request head one byte every `every_s`; the seconds until the server closed
    the connection (None: it never did, and the head was sent whole)."""
    sock = connect(port)
    started = time.monotonic()
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaa":
            if closed_by_peer(sock):
                return time.monotonic() - started
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - started
            time.sleep(every_s)
        return None
    finally:
        sock.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def probe(port: int, path: str, token: str | None = None,
          timeout_s: float = 3.0) -> tuple[int, float, bytes]:
    """GET `path` on a new connection: the status, the seconds it took, the body."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, time.monotonic() - started, resp.read()
    finally:
        conn.close()


def closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


@contextlib.contextmanager
def saturated(port: int, idle: int = 70, trickle: int = 32, every_s: float = 3.0,
              for_s: float = 20.0) -> Iterator[list[socket.socket]]:
    """`trickle` connections that send HEAD a byte every `every_s` (opened first: on a server
    with a thread per connection they take the threads), then `idle` that send nothing. A
    connection the server closes is opened again, as a client holding the port would. The
    trickling stops on leaving, or after `for_s` in any case."""
    slow = [connect(port) for _ in range(trickle)]
    quiet = [connect(port) for _ in range(idle)]
    sent = [0] * trickle
    stop = threading.Event()
    deadline = time.monotonic() + for_s

    def trickling() -> None:
        while not stop.wait(every_s) and time.monotonic() < deadline:
            for i, sock in enumerate(slow):
                try:
                    sock.sendall(HEAD[sent[i] % len(HEAD):][:1])
                    sent[i] += 1
                except OSError:
                    sock.close()
                    slow[i], sent[i] = connect(port), 0
            for i, sock in enumerate(quiet):
                if closed_by_peer(sock):
                    sock.close()
                    quiet[i] = connect(port)

    thread = threading.Thread(target=trickling, name="trickle", daemon=True)
    thread.start()
    try:
        yield slow + quiet
    finally:
        stop.set()
        thread.join(timeout=every_s + 10)
        for sock in slow + quiet:
            sock.close()
