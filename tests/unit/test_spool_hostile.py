"""The spool directory against what a hostile or careless producer leaves in it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from synlearner.daemon.loop import Daemon
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.state import State
from synlearner.daemon.tools.cli import main
from synlearner.memory import ExperienceMemory
from synlearner.stream import JsonlResultSink, SpoolPublisher, SpoolSource, TaskResult
from synlearner.stream.spool import lock_dir
from synlearner.stream.spool_dlq import list_dead_letters, requeue
from tests.unit.doubles import EMB, CentroidLearner, unit_config
from tests.unit.test_loop import task_raw

LIMIT = 64 * 1024


def daemon(tmp_path: Path) -> tuple[Daemon, SpoolSource]:
    spool = SpoolSource(tmp_path / "spool", poll_interval_s=0.01, max_bytes=LIMIT)
    cfg = unit_config(tmp_path / "state", **{"stream.limits.max_message_bytes": LIMIT})
    d = Daemon(cfg, spool, JsonlResultSink(tmp_path / "spool" / "results.jsonl"),
               ExperienceMemory(tmp_path / "memory", EMB, cfg.memory),
               {"classification": CentroidLearner()}, State.load(tmp_path / "state"), Metrics())
    return d, spool


def reasons(tmp_path: Path) -> dict[str, str]:
    return {d.id: d.reason for d in list_dead_letters(tmp_path / "spool")}


def test_entries_that_are_not_regular_files_become_dead_letters(tmp_path: Path) -> None:
    d, _ = daemon(tmp_path)
    incoming = tmp_path / "spool" / "incoming"
    secret = tmp_path / "secret.json"
    secret.write_bytes(task_raw("stolen"))
    os.symlink("/dev/zero", incoming / "a-zero.json")
    os.symlink(secret, incoming / "b-link.json")
    os.mkfifo(incoming / "c-fifo.json")
    (incoming / "d-dir.json").mkdir()
    SpoolPublisher(tmp_path / "spool").submit(task_raw("fine"), "fine")
    d.run()  # no hang on the FIFO, no MemoryError on /dev/zero, no crash on the directory
    assert [e.task_id for e in d.state.entries] == ["fine"]  # the symlinked task is not read
    got = reasons(tmp_path)
    assert got["a-zero.json"] == got["b-link.json"] == "message: a symlink, not a regular file"
    assert got["c-fifo.json"] == "message: not a regular file (a FIFO)"
    assert got["d-dir.json"] == "message: not a regular file (a directory)"
    assert secret.read_bytes() == task_raw("stolen")  # the target is left alone
    assert d.metrics.dead_letters.labels(reason="unreadable")._value.get() == 4


def test_an_oversized_file_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    d, spool = daemon(tmp_path)
    big = tmp_path / "spool" / "incoming" / "big.json"
    with big.open("wb") as fh:
        fh.truncate(600 * 1024 * 1024)  # 600 MiB, sparse
    delivery = spool.poll(0.1)
    assert delivery is not None and len(delivery.raw) == LIMIT + 1
    spool.close()
    d2, _ = daemon(tmp_path)  # a restart hands it out again from processing/
    d2.run()
    assert reasons(tmp_path)["big.json"] == (
        f"message: {LIMIT + 1} bytes exceeds max_message_bytes={LIMIT}")
    assert (tmp_path / "spool" / "failed" / "big.json").stat().st_size == 600 * 1024 * 1024


def test_same_names_never_overwrite_each_other(tmp_path: Path) -> None:
    d, _ = daemon(tmp_path)
    spool_dir = tmp_path / "spool"
    for round_ in range(2):
        (spool_dir / "incoming" / "same.json").write_bytes(task_raw(f"t{round_}"))
        (spool_dir / "incoming" / "bad.json").write_bytes(b"not json %d" % round_)
        d.run()
    assert len(list((spool_dir / "done").iterdir())) == 2
    failed = sorted(p.name for p in (spool_dir / "failed").iterdir())
    assert len(failed) == 4 and sum(n.endswith(".error.json") for n in failed) == 2
    bodies = {p.read_bytes() for p in (spool_dir / "failed").iterdir() if p.suffix == ".json"
              and not p.name.endswith(".error.json")}
    assert bodies == {b"not json 0", b"not json 1"}


def test_acking_a_vanished_file_is_a_warning_not_a_crash(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    spool = SpoolSource(tmp_path)
    SpoolPublisher(tmp_path).submit(b"{}", "x")
    delivery = spool.poll(0.1)
    assert delivery is not None
    (tmp_path / "processing" / delivery.ref).unlink()
    spool.ack(delivery)
    spool.fail(delivery, "gone")
    assert "vanished" in caplog.text


def test_a_torn_last_result_line_does_not_spoil_later_ones(tmp_path: Path) -> None:
    sink = JsonlResultSink(tmp_path / "results.jsonl")
    sink.publish(TaskResult("a", "learned"))
    with (tmp_path / "results.jsonl").open("ab") as fh:
        fh.write(b'{"task_id": "b", "sta')  # a crash mid-write
    sink.publish(TaskResult("c", "learned"))
    assert [r["task_id"] for r in sink.read()] == ["a", "c"]


def test_two_daemons_cannot_share_a_directory(tmp_path: Path) -> None:
    fd = lock_dir(tmp_path, "state directory")
    with pytest.raises(RuntimeError, match="in use by another synlearner process"):
        lock_dir(tmp_path, "state directory")
    os.close(fd)
    os.close(lock_dir(tmp_path, "state directory"))  # free again once released


def test_file_names_are_logged_escaped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d, _ = daemon(tmp_path)
    (tmp_path / "spool" / "incoming" / "x\nFAKE ERROR line.json").write_bytes(b"nope")
    with caplog.at_level(logging.WARNING):
        d.run()
    lines = [r.getMessage() for r in caplog.records if "dead letter" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines)
    assert "'x\\nFAKE ERROR line.json'" in lines[0]


def test_dead_letters_can_be_listed_and_requeued(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    d, _ = daemon(tmp_path)
    pub = SpoolPublisher(tmp_path / "spool")
    first = pub.submit(b"{broken", "first")
    second = pub.submit(task_raw("x").replace(b'"negative"]', b'"negative", "extra"]'), "second")
    d.run()
    letters = {x.id: x for x in list_dead_letters(tmp_path / "spool")}
    assert set(letters) == {first, second} and letters[first].attempts == 1
    assert "no training examples" in letters[second].reason

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nstream: {{spool_dir: {tmp_path / 'spool'}}}\n")
    assert main(["--config", str(cfg), "dead-letters", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{first}" in out and "not valid JSON" in out and "2 dead letters" in out
    assert main(["--config", str(cfg), "dead-letters", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {x["id"] for x in listed} == {first, second} and all(x["reason"] for x in listed)
    assert main(["--config", str(cfg), "dead-letters", "requeue", "nope.json"]) == 2
    assert main(["--config", str(cfg), "dead-letters", "requeue", first]) == 0
    assert sorted(os.listdir(tmp_path / "spool" / "incoming")) == [first]
    assert [x.id for x in list_dead_letters(tmp_path / "spool")] == [second]
    assert requeue(tmp_path / "spool", None) == [second]
    assert list_dead_letters(tmp_path / "spool") == []
