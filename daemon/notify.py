"""systemd notifications without libsystemd: datagrams to `$NOTIFY_SOCKET`."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def sd_notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to systemd; False when not run under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of systemd's WatchdogSec, when the watchdog is enabled for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


@contextmanager
def extending_start(every_s: float = 20.0, by_s: float = 60.0,
                    at_most_s: float = 1800.0) -> Iterator[None]:
    """While the body runs (loading the model, the adapters, a merge), ask systemd for
    `by_s` more seconds of start-up every `every_s`, for at most `at_most_s` in all: a slow
    start is not killed at TimeoutStartSec, a hung one still is."""
    if not os.environ.get("NOTIFY_SOCKET"):
        yield
        return
    done = threading.Event()

    def extend() -> None:
        deadline = time.monotonic() + at_most_s
        while time.monotonic() < deadline:
            sd_notify(f"EXTEND_TIMEOUT_USEC={int(by_s * 1e6)}")
            if done.wait(every_s):
                return

    thread = threading.Thread(target=extend, name="extend-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
