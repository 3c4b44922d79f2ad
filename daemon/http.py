"""HTTP endpoints on 127.0.0.1 by default: /metrics, /healthz, /status."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class HttpServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry,
        status: Callable[[], dict[str, Any]], healthy: Callable[[], bool],
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  # name fixed by http.server
                if self.path.split("?")[0] == "/metrics":
                    outer._reply(self, 200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif self.path == "/healthz":
                    ok = healthy()
                    outer._reply(self, 200 if ok else 503, "text/plain", b"ok\n" if ok else b"stalled\n")
                elif self.path == "/status":
                    body = json.dumps(status(), indent=1, default=str).encode()
                    outer._reply(self, 200, "application/json", body)
                else:
                    outer._reply(self, 404, "text/plain", b"not found\n")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # base signature
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
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
        self._server.shutdown()
        self._server.server_close()
