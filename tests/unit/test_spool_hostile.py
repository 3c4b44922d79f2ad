"""The spool directory against what a hostile or careless producer leaves in it."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from synlearner.daemon.attempts import Attempts
from synlearner.daemon.loop import Daemon
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.state import State
from synlearner.daemon.tools.cli import main
from synlearner.memory import ExperienceMemory
from synlearner.stream import JsonlResultSink, SpoolPublisher, SpoolSource, TaskResult
from synlearner.stream.io import NAME_MAX, fit_name, write_atomic
from synlearner.stream.spool import expire_failed, lock_dir
from synlearner.stream.spool_dlq import list_dead_letters, requeue
from tests.unit.doubles import EMB, CentroidLearner, unit_config
from tests.unit.test_loop import task_raw

LIMIT = 64 * 1024


def daemon(tmp_path: Path, **spool_settings: Any) -> tuple[Daemon, SpoolSource]:
    """A daemon on the spool `tmp_path/spool`, counting attempts in sidecars as in production."""
    spool = SpoolSource(tmp_path / "spool", poll_interval_s=0.01, max_bytes=LIMIT, **spool_settings)
    cfg = unit_config(tmp_path / "state", **{"stream.limits.max_message_bytes": LIMIT})
    d = Daemon(cfg, spool, JsonlResultSink(tmp_path / "spool" / "results.jsonl"),
               ExperienceMemory(tmp_path / "memory", EMB, cfg.memory),
               {"classification": CentroidLearner()}, State.load(tmp_path / "state"), Metrics(),
               Attempts(tmp_path / "spool" / "processing", sidecar=True))
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


def spool_names(spool: Path) -> list[str]:
    return [p.name for sub in ("incoming", "processing", "done", "failed") for p in
            (spool / sub).iterdir()]


@pytest.mark.parametrize("length", [250, 255])
def test_file_names_up_to_the_limit_are_learned_and_dead_lettered(tmp_path: Path,
                                                                  length: int) -> None:
    """Every name the spool derives from a long one (error record, its temporary file, a
    fresh name beside a taken one) stays within NAME_MAX; nothing escapes `run()`."""
    d, _ = daemon(tmp_path)
    spool = tmp_path / "spool"
    good, bad = "g" * (length - 5) + ".json", "b" * (length - 5) + ".json"
    for round_ in range(2):  # the second round finds both names taken in done/ and failed/
        (spool / "incoming" / good).write_bytes(task_raw(f"long{round_}"))
        (spool / "incoming" / bad).write_bytes(b"not json")
        d.run()
    assert [e.task_id for e in d.state.entries] == ["long0", "long1"]
    assert len(list((spool / "done").iterdir())) == 2
    letters = list_dead_letters(spool)
    assert len(letters) == 2 and all(x.reason.startswith("message: not valid JSON")
                                     for x in letters)
    assert bad in {x.id for x in letters} and all(x.source == bad for x in letters)
    assert all(len(os.fsencode(n)) <= NAME_MAX for n in spool_names(spool))
    assert sorted(requeue(spool, None)) == sorted(x.id for x in letters)
    assert list_dead_letters(spool) == [] and not list((spool / "failed").iterdir())


def test_fit_name_keeps_short_names_and_bounds_long_ones_the_same_way_each_time() -> None:
    assert fit_name("short", ".json") == "short.json"
    long_name = fit_name("é" * 200, ".error.json")  # 400 bytes of stem
    assert len(os.fsencode(long_name)) <= NAME_MAX and long_name.endswith(".error.json")
    assert long_name.startswith("é" * 100) and long_name.encode("utf-8")  # no half character
    assert fit_name("é" * 200, ".error.json") == long_name != fit_name("é" * 201, ".error.json")


def test_names_the_publisher_and_atomic_writes_derive_stay_within_the_limit(
        tmp_path: Path) -> None:
    name = SpoolPublisher(tmp_path).submit(task_raw("x"), "é" * 200)  # 2 bytes a character
    assert len(os.fsencode(name)) <= NAME_MAX and name.endswith(".json")
    assert (tmp_path / "incoming" / name).read_bytes() == task_raw("x")
    longest = tmp_path / ("n" * NAME_MAX)
    write_atomic(longest, b"1")  # its temporary file has a bounded name too
    assert longest.read_bytes() == b"1"


def test_a_dead_letter_named_like_an_error_record_is_listed_and_requeued(tmp_path: Path) -> None:
    d, _ = daemon(tmp_path)
    spool = tmp_path / "spool"
    named = SpoolPublisher(spool).submit(b"{broken", "task.error")  # ...-task.error.json
    (spool / "incoming" / "a.json").write_bytes(b"first")
    (spool / "incoming" / "a.json.error.json").write_bytes(b"second")  # a.json's record name
    d.run()
    letters = list_dead_letters(spool)
    assert len(letters) == 3 and all("not valid JSON" in x.reason for x in letters)
    assert {x.source for x in letters} == {named, "a.json", "a.json.error.json"}
    bodies = {(spool / "failed" / x.id).read_bytes() for x in letters}
    assert bodies == {b"{broken", b"first", b"second"}
    assert len(requeue(spool, None)) == 3
    assert sorted(p.read_bytes() for p in (spool / "incoming").iterdir()) == [
        b"first", b"second", b"{broken"]
    assert not list((spool / "failed").iterdir())


def quarantine(tmp_path: Path) -> None:
    """`poison.json` left in processing/ by 3 crashes, and `bad.json` that is not JSON."""
    spool = tmp_path / "spool"
    d, _ = daemon(tmp_path)
    (spool / "processing" / "poison.json").write_bytes(task_raw("poison"))
    attempts = Attempts(spool / "processing", sidecar=True)
    for _ in range(3):
        attempts.begin("poison.json")
    (spool / "incoming" / "bad.json").write_bytes(b"nope")
    d.run()
    assert reasons(tmp_path)["poison.json"].startswith("crashed 3 times")


def test_requeue_all_leaves_out_messages_quarantined_for_crashing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quarantine(tmp_path)
    spool = tmp_path / "spool"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nstream: {{spool_dir: {spool}}}\n")
    assert main(["--config", str(cfg), "dead-letters", "requeue", "--all"]) == 0
    out = capsys.readouterr().out
    assert "requeued bad.json" in out
    assert "skipped 1 quarantined for crashing" in out
    assert "synlearner dead-letters requeue poison.json" in out
    assert os.listdir(spool / "incoming") == ["bad.json"]
    assert list(reasons(tmp_path)) == ["poison.json"]
    assert requeue(spool, None) == []  # the library's "all" leaves it out too
    assert main(["--config", str(cfg), "dead-letters", "requeue", "poison.json"]) == 0
    assert sorted(os.listdir(spool / "incoming")) == ["bad.json", "poison.json"]
    assert list_dead_letters(spool) == []


def test_a_flood_of_invalid_messages_keeps_only_the_newest_dead_letters(tmp_path: Path) -> None:
    d, _ = daemon(tmp_path, failed_max_count=5)
    spool = tmp_path / "spool"
    for i in range(12):
        (spool / "incoming" / f"{i:02d}.json").write_bytes(b"not json %d" % i)
    d.run()
    assert [x.id for x in list_dead_letters(spool)] == [f"{i:02d}.json" for i in range(7, 12)]
    assert len(list((spool / "failed").iterdir())) == 10  # each with its error record


def test_old_dead_letters_expire_oldest_first_when_one_is_written(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    source = SpoolSource(spool, poll_interval_s=0.01, failed_max_age_s=3600, failed_max_count=0)
    for name in ("old.json", "recent.json"):
        (spool / "incoming" / name).write_bytes(b"x")
        delivery = source.poll(0.1)
        assert delivery is not None
        source.fail(delivery, "message: not valid JSON")
    two_hours_ago = time.time() - 7200
    for path in (spool / "failed").glob("old.json*"):
        os.utime(path, (two_hours_ago, two_hours_ago))
    fresh = SpoolSource(spool, poll_interval_s=0.01, failed_max_age_s=3600, failed_max_count=0)
    (spool / "incoming" / "new.json").write_bytes(b"x")
    delivery = fresh.poll(0.1)
    assert delivery is not None
    fresh.fail(delivery, "message: not valid JSON")
    assert sorted(reasons(tmp_path)) == ["new.json", "recent.json"]
    assert sorted(os.listdir(spool / "failed")) == [
        "new.json", "new.json.error.json", "recent.json", "recent.json.error.json"]
    a_minute_ago = time.time() - 60
    for path in (spool / "failed").glob("recent.json*"):
        os.utime(path, (a_minute_ago, a_minute_ago))
    assert expire_failed(spool, 0, 1) == 1  # by count, oldest first
    assert list(reasons(tmp_path)) == ["new.json"]
    assert expire_failed(spool, 0, 0) == 0  # no limits: nothing is deleted


def test_the_failed_retention_has_configured_defaults(tmp_path: Path) -> None:
    cfg = unit_config(tmp_path)
    assert cfg.stream.failed_max_age_s == 30 * 86400 and cfg.stream.failed_max_count == 10_000
    source = SpoolSource(tmp_path / "spool")
    assert (source.retention.max_age_s, source.retention.max_count) == (30 * 86400, 10_000)
