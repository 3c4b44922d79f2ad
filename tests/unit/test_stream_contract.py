"""The `TaskSource` contract, run over every source implementation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from synlearner.stream import (
    InMemorySource,
    JsonlResultSink,
    SpoolPublisher,
    SpoolSource,
    TaskResult,
    TaskSource,
)
from synlearner.stream.spool_dlq import list_dead_letters


class SpoolHarness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = SpoolSource(root, poll_interval_s=0.01)
        self.publisher = SpoolPublisher(root)

    def submit(self, raw: bytes) -> None:
        self.publisher.submit(raw, "k")

    def crash_and_restart(self) -> None:
        self.source = SpoolSource(self.root, poll_interval_s=0.01)


class MemoryHarness:
    def __init__(self, _root: Path) -> None:
        self.source = InMemorySource()

    def submit(self, raw: bytes) -> None:
        self.source.submit(raw, "k")

    def crash_and_restart(self) -> None:
        self.source.restart()


HARNESSES: list[Callable[[Path], SpoolHarness | MemoryHarness]] = [SpoolHarness, MemoryHarness]


@pytest.fixture(params=HARNESSES, ids=["spool", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> SpoolHarness | MemoryHarness:
    return request.param(tmp_path)  # type: ignore[no-any-return]  # fixture param


def test_implements_protocol(harness: SpoolHarness | MemoryHarness) -> None:
    assert isinstance(harness.source, TaskSource)


def test_fifo_and_empty_poll(harness: SpoolHarness | MemoryHarness) -> None:
    assert harness.source.poll(0.01) is None
    for i in range(3):
        harness.submit(f'{{"n": {i}}}'.encode())
    assert harness.source.pending() == 3
    got = []
    for _ in range(3):
        d = harness.source.poll(0.5)
        assert d is not None
        got.append(json.loads(d.raw)["n"])
        harness.source.ack(d)
    assert got == [0, 1, 2]
    assert harness.source.poll(0.01) is None and harness.source.pending() == 0


def test_unacked_delivery_comes_back_after_restart(harness: SpoolHarness | MemoryHarness) -> None:
    harness.submit(b'{"n": 1}')
    harness.submit(b'{"n": 2}')
    first = harness.source.poll(0.5)
    assert first is not None and json.loads(first.raw) == {"n": 1}
    harness.crash_and_restart()
    again = harness.source.poll(0.5)
    assert again is not None and again.raw == first.raw
    harness.source.ack(again)
    second = harness.source.poll(0.5)
    assert second is not None and json.loads(second.raw) == {"n": 2}
    harness.source.ack(second)
    harness.crash_and_restart()
    assert harness.source.poll(0.05) is None


def test_failed_delivery_is_dead_lettered_not_redelivered(
    harness: SpoolHarness | MemoryHarness,
) -> None:
    harness.submit(b"not json")
    d = harness.source.poll(0.5)
    assert d is not None
    harness.source.fail(d, "message: not valid JSON")
    harness.crash_and_restart()
    assert harness.source.poll(0.05) is None


def test_spool_layout_after_ack_and_fail(tmp_path: Path) -> None:
    h = SpoolHarness(tmp_path)
    h.submit(b'{"ok": 1}')
    h.submit(b"broken")
    good, bad = h.source.poll(0.5), None
    assert good is not None
    h.source.ack(good)
    bad = h.source.poll(0.5)
    assert bad is not None
    h.source.fail(bad, "message: not valid JSON")
    assert [p.read_bytes() for p in (tmp_path / "done").iterdir()] == [b'{"ok": 1}']
    failed = sorted(p.name for p in (tmp_path / "failed").iterdir())
    assert failed == [bad.ref, f"{bad.ref}.error.json"]
    error = json.loads((tmp_path / "failed" / f"{bad.ref}.error.json").read_text())
    assert error["reason"] == "message: not valid JSON"
    assert not list((tmp_path / "processing").iterdir())
    assert not list((tmp_path / "incoming").iterdir())


def test_spool_ignores_partial_writes(tmp_path: Path) -> None:
    h = SpoolHarness(tmp_path)
    (tmp_path / "incoming" / ".half-written.json.tmp").write_bytes(b'{"n"')
    assert h.source.poll(0.02) is None


def test_jsonl_results_sink(tmp_path: Path) -> None:
    sink = JsonlResultSink(tmp_path / "results.jsonl")
    sink.publish(TaskResult("a", "learned", "h", 1, {"final": 0.9}))
    sink.publish(TaskResult("", "invalid", error="task_id: bad"))
    rows = sink.read()
    assert [r["status"] for r in rows] == ["learned", "invalid"]
    assert rows[0]["metrics"] == {"final": 0.9} and rows[0]["schema"] == "synlearner.result/v1"


def test_spool_settles_messages_whose_names_take_the_whole_name_limit(tmp_path: Path) -> None:
    """A producer may name a file up to NAME_MAX bytes; acking and failing it still works,
    and the error record beside a dead letter gets a bounded name of its own."""
    h = SpoolHarness(tmp_path)
    done_name, failed_name = "d" * 250 + ".json", "f" * 250 + ".json"
    (tmp_path / "incoming" / done_name).write_bytes(b'{"ok": 1}')
    (tmp_path / "incoming" / failed_name).write_bytes(b"broken")
    first, second = h.source.poll(0.5), h.source.poll(0.5)
    assert first is not None and second is not None
    h.source.ack(first)
    h.source.fail(second, "message: not valid JSON")
    assert [p.name for p in (tmp_path / "done").iterdir()] == [done_name]
    [record] = [p for p in (tmp_path / "failed").iterdir() if p.name != failed_name]
    assert record.name.endswith(".error.json") and len(record.name) <= 255
    assert json.loads(record.read_text())["reason"] == "message: not valid JSON"
    assert [d.reason for d in list_dead_letters(tmp_path)] == ["message: not valid JSON"]
