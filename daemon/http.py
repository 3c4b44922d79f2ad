"""HTTP endpoints on 127.0.0.1 by default: /metrics, /healthz, /readyz, /status.

Each connection gets a thread, a socket timeout and one of `max_connections` slots; a
connection over the cap is answered 503 and closed at once, without a thread.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from synlearner.daemon.config import HTTP_MAX_CONNECTIONS, HTTP_REQUEST_TIMEOUT_S

log = logging.getLogger("synlearner.daemon")
CONNECTION_THREAD = "http-connection"

_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _BoundedServer(ThreadingHTTPServer):
    """A threading server that runs at most `max_connections` handler threads at once."""

    daemon_threads = True
    request_queue_size = 64  # a burst of connects waits in the kernel, not on SYN retries

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler],
                 max_connections: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((host, port), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            threading.Thread(target=self._serve, args=(request, client_address),
                             name=CONNECTION_THREAD, daemon=True).start()
        except BaseException:  # e.g. no thread to be had: the caller closes the request
            self._slots.release()
            raise

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)  # handles, then closes
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.setblocking(False)
            request.send(_BUSY)
            request.recv(65536)  # input left unread would turn the close into a reset
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http: error serving %s", client_address, exc_info=True)


class HttpServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry,
        status: Callable[[], dict[str, Any]], healthy: Callable[[], bool],
        ready: Callable[[], bool] = lambda: True, request_timeout_s: float = HTTP_REQUEST_TIMEOUT_S,
        max_connections: int = HTTP_MAX_CONNECTIONS,
    ) -> None:
        if request_timeout_s <= 0 or max_connections <= 0:
            raise ValueError("request_timeout_s and max_connections must be positive")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout_s  # applies to every read and write on the socket

            def do_GET(self) -> None:  # noqa: N802  # name fixed by http.server
                if self.path.split("?")[0] == "/metrics":
                    outer._reply(self, 200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif self.path == "/healthz":
                    ok = healthy()
                    outer._reply(self, 200 if ok else 503, "text/plain", b"ok\n" if ok else b"stalled\n")
                elif self.path == "/readyz":
                    up = ready()
                    outer._reply(self, 200 if up else 503, "text/plain",
                                 b"ready\n" if up else b"not ready\n")
                elif self.path == "/status":
                    body = json.dumps(status(), indent=1, default=str).encode()
                    outer._reply(self, 200, "application/json", body)
                else:
                    outer._reply(self, 404, "text/plain", b"not found\n")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # base signature
                pass

        if not is_loopback(host):
            log.warning("http: binding to %r, not a loopback address: /metrics and /status "
                        "are unauthenticated", host)
        self._server = _BoundedServer(host, port, Handler, max_connections)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, code: int, ctype: str, body: bytes) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
