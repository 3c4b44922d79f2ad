"""SIGTERM mid-stream, then a restart: every task is learned exactly once. Drives the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synlearner.daemon.state import State
from synlearner.daemon.tools.demo import demo_stream

pytestmark = pytest.mark.integration


def cli(*args: str, cfg: Path, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "synlearner.daemon.tools.cli", "--config", str(cfg),
                           *args], capture_output=True, text=True, timeout=600, check=True, **kw)


def wait_for(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in path.read_text():
            return
        assert proc.poll() is None, path.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not seen in time:\n{path.read_text()[-3000:]}")


def test_sigterm_mid_stream_then_restart_learns_each_task_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"state_dir: {state}\n"
        "stream: {poll_timeout_s: 0.2}\n"
        "learner: {train: {max_steps: 60, epochs: 4.0}}\n"
        "daemon: {http: {port: 0}, progress_every_steps: 2}\n"
    )
    tasks = demo_stream(seed=5, n_train=48, n_eval=30)[:3]
    for t in tasks:
        (tmp_path / f"{t['task_id']}.json").write_text(json.dumps(t))
    out = cli("submit", *[str(tmp_path / f"{t['task_id']}.json") for t in tasks], cfg=cfg)
    assert out.stdout.count("submitted") == 3

    log = tmp_path / "run1.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "synlearner.daemon.tools.cli", "--config",
                                 str(cfg), "run", "--drain"], stdout=fh, stderr=subprocess.STDOUT)
        second = tasks[1]["task_id"]
        wait_for(log, f"task {second}: train\n", proc, timeout=300)  # its train phase began
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    text = log.read_text()
    assert "stopping after the current step" in text and "stopped cleanly" in text
    assert "will be redelivered" in text
    first_state = State.read(state).as_dict()
    assert [e["task_id"] for e in first_state["entries"]] == [tasks[0]["task_id"]]
    assert len(list((state / "spool" / "processing").iterdir())) == 1

    rerun = cli("run", "--drain", cfg=cfg)
    assert "stream drained" in rerun.stderr
    results = [json.loads(x) for x in (state / "spool" / "results.jsonl").read_text().splitlines()]
    learned = [r["task_id"] for r in results if r["status"] == "learned"]
    assert sorted(learned) == sorted(t["task_id"] for t in tasks)  # each exactly once
    final_state = State.read(state).as_dict()
    assert [e["task_id"] for e in final_state["entries"]] == [t["task_id"] for t in tasks]

    status = json.loads(cli("status", cfg=cfg).stdout)
    assert status["memory"]["experience"] == sum(len(t["train"]) + len(t["eval"]) for t in tasks)
    assert status["pending"] == 0 and len(status["tasks"]) == 3

    report = cli("report", cfg=cfg).stdout
    assert "ACC" in report and "BWT" in report and "FWT" in report
    for name in ("report.json", "accuracy_matrix.png", "accuracy_over_time.png"):
        assert (state / "report" / name).stat().st_size > 0

    pred = cli("predict", "--task", "reviews-restaurants", "The pasta was superb.",
               "The waiter was dreadful.", cfg=cfg)
    answers = [json.loads(line)["prediction"] for line in pred.stdout.splitlines()]
    assert answers == ["positive", "negative"]
    env = {**os.environ, "SYNLEARNER__MEMORY__INDX": "flat"}
    bad = subprocess.run([sys.executable, "-m", "synlearner.daemon.tools.cli", "--config", str(cfg),
                          "status"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "memory.indx" in bad.stderr
