"""No message stops the stream, on the real model: a message that kills the process inside
training is quarantined after `max_attempts` restarts and the next task is learned; long
inputs are learned with what was cut reported."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from synlearner.daemon.build import build_daemon
from synlearner.daemon.config import load_config
from synlearner.daemon.tools.demo import demo_stream
from synlearner.stream import JsonlResultSink, SpoolPublisher
from tests.integration.test_sigterm_restart import cli, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
CRASH_AT = ROOT / "tests" / "crash_at.py"


def test_a_message_that_kills_the_daemon_is_quarantined_after_max_attempts(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"state_dir: {state}\n"
        "stream: {poll_timeout_s: 0.2, max_attempts: 3}\n"
        "learner: {train: {max_steps: 12}, init_probe_steps: 0}\n"
        "daemon: {http: {port: 0}, progress_every_steps: 1}\n"
    )
    poison, after = demo_stream(seed=11, n_train=24, n_eval=16)[:2]
    for t in (poison, after):
        (tmp_path / f"{t['task_id']}.json").write_text(json.dumps(t))
    cli("submit", str(tmp_path / f"{poison['task_id']}.json"),
        str(tmp_path / f"{after['task_id']}.json"), cfg=cfg)

    for attempt in range(1, 4):  # it kills the process at step 2 of its training every time
        log = tmp_path / f"run{attempt}.log"
        with log.open("wb") as fh:
            proc = subprocess.run([sys.executable, str(CRASH_AT), poison["task_id"], "2",
                                   "--config", str(cfg), "run", "--drain"], stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=300)
        assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
        sidecars = list((state / "spool" / "processing").glob("*.attempts"))
        assert len(sidecars) == 1 and json.loads(sidecars[0].read_text())["attempts"] == attempt

    final = cli("run", "--drain", cfg=cfg)
    assert "quarantined" in final.stderr
    results = JsonlResultSink(state / "spool" / "results.jsonl").read()
    assert [(r["task_id"], r["status"]) for r in results] == [("", "invalid"),
                                                              (after["task_id"], "learned")]
    assert re.fullmatch(rf"crashed 3 times at the same point: last in train step 2/\d+ of "
                        rf"task {poison['task_id']}", results[0]["error"]), results[0]["error"]
    error, = (state / "spool" / "failed").glob("*.error.json")
    assert json.loads(error.read_text())["attempts"] == 3
    assert list((state / "spool" / "processing").iterdir()) == []
    listed = cli("dead-letters", "list", cfg=cfg).stdout
    assert "attempts=3" in listed and "crashed 3 times" in listed


def test_a_good_task_killed_ten_times_at_different_points_is_learned(tmp_path: Path) -> None:
    """Restarts, the OOM killer under another process's load, a crash-looping host: a
    process killed from outside dies wherever it is. Killed ten times, at ten different
    training steps, the task is still learned (only deaths at one same point count)."""
    state = tmp_path / "state"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"state_dir: {state}\n"
        "stream: {poll_timeout_s: 0.2, max_attempts: 3}\n"
        "learner: {train: {steps: 24}, init_probe_steps: 0}\n"
        "daemon: {http: {port: 0}, progress_every_steps: 1}\n"
    )
    good = demo_stream(seed=11, n_train=24, n_eval=16)[0]
    (tmp_path / "good.json").write_text(json.dumps(good))
    cli("submit", str(tmp_path / "good.json"), cfg=cfg)
    for kill in range(1, 11):
        log = tmp_path / f"run{kill}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "synlearner.daemon.tools.cli", "--config",
                                     str(cfg), "run", "--drain"], stdout=fh,
                                    stderr=subprocess.STDOUT)
            wait_for(log, f"task {good['task_id']}: train step {2 * kill}/24", proc, timeout=300)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    final = cli("run", "--drain", cfg=cfg)
    assert "quarantined" not in final.stderr
    results = JsonlResultSink(state / "spool" / "results.jsonl").read()
    assert [(r["task_id"], r["status"]) for r in results] == [(good["task_id"], "learned")]
    sidecar_gone = list((state / "spool" / "processing").iterdir()) == []
    assert sidecar_gone and list((state / "spool" / "failed").glob("*")) == []


def test_long_inputs_are_learned_and_what_was_cut_is_reported(tmp_path: Path) -> None:
    task = demo_stream(seed=4, n_train=40, n_eval=20)[0]
    filler = " It went on and on about the place, the street, the weather and the parking." * 80
    for i, row in enumerate(task["train"]):
        if i % 4 == 0:
            row["input"] += filler  # over 5,000 characters, as real reviews are
    assert max(len(r["input"]) for r in task["train"]) > 5000
    cfg = load_config(ROOT / "configs" / "default.yaml", {
        "state_dir": str(tmp_path / "state"), "daemon.http.enabled": False, "daemon.drain": True,
        "learner.train": {"max_steps": 20}, "stream.poll_timeout_s": 0.2}, env={})
    SpoolPublisher(cfg.spool_dir).submit(json.dumps(task).encode(), task["task_id"])
    parts = build_daemon(cfg)
    try:
        parts.daemon.run()
    finally:
        parts.close()
    result, = JsonlResultSink(cfg.spool_dir / "results.jsonl").read()
    assert result["status"] == "learned", result
    assert result["truncated"]["train.input"] == 10  # cut at max_field_chars=4000
    assert result["truncated"]["model_max_length"] >= 10  # and at the encoder's 128 tokens
    assert parts.metrics.input_truncated.labels(what="train.input")._value.get() == 10
    assert result["metrics"]["final"] > 0.6
