"""Runs a built daemon as a service: HTTP endpoints, signals, scheduler jobs, systemd."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from synlearner.daemon.build import Parts
from synlearner.daemon.config import Config
from synlearner.daemon.http import HttpServer
from synlearner.daemon.notify import sd_notify, watchdog_interval_s

log = logging.getLogger("synlearner.daemon")


class Service:
    def __init__(self, cfg: Config, parts: Parts) -> None:
        self.cfg = cfg
        self.parts = parts
        self.daemon = parts.daemon
        self.http: HttpServer | None = None
        self.scheduler = BackgroundScheduler(daemon=True)
        # under a systemd watchdog a hang stops its pings within WatchdogSec, and systemd
        # restarts the daemon a WatchdogSec later
        watchdog = watchdog_interval_s()
        self.stall_after_s = min(cfg.daemon.stall_after_s,
                                 2 * watchdog if watchdog else cfg.daemon.stall_after_s)

    def healthy(self) -> bool:
        """The main loop made progress lately and the stream source can still deliver."""
        alive = time.monotonic() - self.daemon.heartbeat < self.stall_after_s
        return alive and bool(self.daemon.source.healthy())

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Runs on the main thread between two of its bytecodes, perhaps while it holds a
        lock (a queue's, an event's): so it takes none itself. SIGHUP sets a flag; a stop
        is handed to a thread of its own (setting the stop event takes its lock)."""
        if signum == signal.SIGHUP:
            self.daemon.gauges_due = True
            return
        threading.Thread(target=self._stop_for, args=(signum,), name="stop", daemon=True).start()

    def _stop_for(self, signum: int) -> None:
        log.info("signal %d: stopping after the current step", signum)
        sd_notify("STOPPING=1")
        self.daemon.stop()

    def _gauges_due(self) -> None:
        self.daemon.gauges_due = True

    def _watchdog(self) -> None:
        if self.healthy():
            sd_notify("WATCHDOG=1")
        sd_notify(f"STATUS={self.daemon.phase} {self.daemon.current or ''}".strip())

    def start(self) -> None:
        http_cfg = self.cfg.daemon.http
        if http_cfg.enabled:
            self.http = HttpServer(http_cfg.host, http_cfg.port, self.parts.metrics.registry,
                                   self.daemon.status, self.healthy,
                                   request_timeout_s=http_cfg.request_timeout_s,
                                   max_connections=http_cfg.max_connections)
            self.http.start()
            log.info("metrics on http://%s:%d/metrics", http_cfg.host, self.http.port)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        interval = watchdog_interval_s() or self.cfg.daemon.watchdog_s
        self.scheduler.add_job(self._watchdog, "interval", seconds=interval, id="watchdog")
        self.scheduler.add_job(self._gauges_due, "interval", seconds=15, id="gauges")
        self.scheduler.start()
        sd_notify("READY=1")

    def run(self) -> None:
        self.start()
        try:
            self.daemon.run()
        finally:
            self.close()

    def close(self) -> None:
        sd_notify("STOPPING=1")
        self.scheduler.shutdown(wait=False)
        self.parts.close()
        if self.http is not None:
            self.http.stop()
        log.info("daemon: stopped cleanly")
