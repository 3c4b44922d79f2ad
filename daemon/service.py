"""Runs a built daemon as a service: HTTP endpoints, signals, scheduler jobs, systemd."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from synlearner.daemon.build import Parts
from synlearner.daemon.config import Config
from synlearner.daemon.http import HttpServer
from synlearner.daemon.jobs import intervals
from synlearner.daemon.notify import sd_notify, watchdog_interval_s

if TYPE_CHECKING:
    from synlearner.daemon.api import ApiServer

log = logging.getLogger("synlearner.daemon")


class Service:
    def __init__(self, cfg: Config, parts: Parts,
                 reload: Callable[[], Config] | None = None) -> None:
        self.cfg = cfg
        self.parts = parts
        self.daemon = parts.daemon
        self.http: HttpServer | None = None
        self.api: ApiServer | None = None
        self.started = False
        self.scheduler = BackgroundScheduler(daemon=True)
        self._watchdog_s = watchdog_interval_s()
        if reload is not None:
            self.daemon.config_loader = reload

    @property
    def stall_after_s(self) -> float:
        """Under a systemd watchdog a hang stops its pings within WatchdogSec, and systemd
        restarts the daemon a WatchdogSec later."""
        stall = self.daemon.cfg.daemon.stall_after_s  # a SIGHUP may change it
        return min(stall, 2 * self._watchdog_s) if self._watchdog_s else stall

    def healthy(self) -> bool:
        """The main loop made progress lately and the stream source can still deliver."""
        alive = time.monotonic() - self.daemon.heartbeat < self.stall_after_s
        return alive and bool(self.daemon.source.healthy())

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Runs on the main thread between two of its bytecodes, perhaps while it holds a
        lock (a queue's, an event's): so it takes none itself. SIGHUP sets flags (the main
        loop reads the config again and refreshes the gauges between tasks); a stop
        is handed to a thread of its own (setting the stop event takes its lock)."""
        if signum == signal.SIGHUP:
            self.daemon.reload_due = self.daemon.gauges_due = True
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

    def ready(self) -> bool:
        """Model and memory built (the service started), the stream can deliver, no stop was
        asked for, and the stream is not held on a failure."""
        return (self.started and not self.daemon.stopping and not self.daemon.held
                and bool(self.daemon.source.healthy()))

    def _start_api(self) -> None:
        """The API on its own thread, answering from a copy of the models loaded by its
        first request (never from the adapter being trained)."""
        from synlearner.daemon.api import ApiServer, create_app
        from synlearner.daemon.build import build_learners
        from synlearner.daemon.serving import Predictor

        api = self.cfg.daemon.api
        predictor = Predictor(self.cfg, lambda: build_learners(self.cfg))
        app = create_app(predictor, api, self.parts.metrics.registry, self.ready)
        try:
            self.api = ApiServer(app, api)
        except OSError as exc:  # learning goes on without it
            log.error("api: cannot listen on %s:%d (%s); serving is off, learning goes on",
                      api.host, api.port, exc.strerror or exc)
            return
        self.api.start()
        log.info("api on http://%s:%d/v1/predict", api.host, self.api.port)

    def start(self) -> None:
        http_cfg = self.cfg.daemon.http
        if http_cfg.enabled:
            token = http_cfg.token.get_secret_value() if http_cfg.token is not None else None
            self.http = HttpServer(http_cfg.host, http_cfg.port, self.parts.metrics.registry,
                                   self.daemon.status, self.healthy, self.ready,
                                   request_timeout_s=http_cfg.request_timeout_s,
                                   max_connections=http_cfg.max_connections,
                                   max_pending=http_cfg.max_pending, token=token)
            self.http.start()
            log.info("metrics on http://%s:%d/metrics", http_cfg.host, self.http.port)
        if self.cfg.daemon.api.enabled:
            self._start_api()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        interval = watchdog_interval_s() or self.cfg.daemon.watchdog_s
        self.scheduler.add_job(self._watchdog, "interval", seconds=interval, id="watchdog")
        self.scheduler.add_job(self._gauges_due, "interval", seconds=15, id="gauges")
        for name, every in intervals(self.daemon.ctx).items():
            if every > 0:  # queued here, run by the main loop between tasks
                self.parts.metrics.job_runs.labels(name=name)  # exported as 0 until it runs
                self.parts.metrics.job_failures.labels(name=name)
                self.scheduler.add_job(self.daemon.jobs_due.add, "interval", args=(name,),
                                       seconds=every, id=name, coalesce=True, max_instances=1)
        self.scheduler.start()
        self.started = True
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
        if self.api is not None:  # no new answers once the state starts to close
            self.api.stop()
        self.parts.close()
        if self.http is not None:
            self.http.stop()
        log.info("daemon: stopped cleanly")
