"""The daemon under a test that plays systemd: a notify socket, `NOTIFY_SOCKET` and
`WATCHDOG_USEC` set. READY comes after the start-up extensions, STATUS lines follow, the
watchdog is fed while the loop makes progress and not while one training step runs longer
than WatchdogSec (what a hung step looks like from outside), and SIGTERM ends in STOPPING."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WATCHDOG_S = 3.0  # WatchdogSec: pings every 1.5 s while healthy


def long_task() -> dict:  # type: ignore[type-arg]
    """Inputs of 512 tokens in batches of 8: one training step (about 12 s on two cores)
    takes far longer than WatchdogSec, as a hung step would."""
    words = "the service was slow but the food was very good and the staff kind ".split()
    rows = [{"input": " ".join(words[(i + j) % len(words)] for j in range(600)),
             "output": "positive" if i % 2 else "negative"} for i in range(16)]
    return {"schema": "synlearner.task/v1", "task_id": "long-steps", "kind": "classification",
            "instruction": "Is this review positive or negative?", "labels": ["positive", "negative"],
            "train": rows, "eval": rows[:4]}


def test_the_daemon_speaks_to_systemd_and_a_hung_step_stops_the_watchdog(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"state_dir: {state}\n"
        "stream: {poll_timeout_s: 0.2}\n"
        "learner: {init_probe_steps: 0, train: {steps: 2, batch_size: 8, max_length: 512}}\n"
        "daemon: {http: {port: 0}, progress_every_steps: 1}\n"
    )
    (tmp_path / "task.json").write_text(json.dumps(long_task()))
    cli = [sys.executable, "-m", "synlearner.daemon.tools.cli", "--config", str(cfg)]
    subprocess.run([*cli, "submit", str(tmp_path / "task.json")], check=True, capture_output=True)
    sock_path = tmp_path / "notify.sock"
    messages: list[tuple[float, str]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path),
               "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6)), "HF_HUB_OFFLINE": "1"}
        env.pop("WATCHDOG_PID", None)
        log = tmp_path / "daemon.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen([*cli, "run"], stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 400
            learned = None
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    messages.append((time.monotonic(), sock.recv(4096).decode()))
                assert proc.poll() is None, log.read_text()[-3000:]
                if learned is None and "task long-steps: learned" in log.read_text():
                    learned = time.monotonic()
                if learned is not None and time.monotonic() - learned > 4 * WATCHDOG_S:
                    break  # idle pings after the task were seen too
            else:
                raise AssertionError(f"not learned in time:\n{log.read_text()[-3000:]}")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
            while True:
                try:
                    messages.append((time.monotonic(), sock.recv(4096).decode()))
                except TimeoutError:
                    break
        finally:
            if proc.poll() is None:
                proc.kill()

    kinds = [m.split("=", 1)[0] for _, m in messages]
    ready = kinds.index("READY")
    assert "EXTEND_TIMEOUT_USEC" in kinds[:ready]  # the start-up asked for time first
    assert "STATUS" in kinds[ready:] and kinds[-1] == "STOPPING"
    assert any(m.startswith("STATUS=train long-steps") for _, m in messages)
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    # fed every WatchdogSec / 2 while healthy: most gaps are about 1.5 s ...
    assert sorted(gaps)[len(gaps) // 2] < WATCHDOG_S, gaps
    # ... and while a step ran past WatchdogSec the pings stopped for longer than it: systemd
    # would restart it (the step's gap is about 6 s; twice WatchdogSec was too tight a bound)
    assert max(gaps) > 1.5 * WATCHDOG_S, gaps
    steps = log.read_text().count("task long-steps: train step")
    assert steps == 2, log.read_text()[-3000:]
