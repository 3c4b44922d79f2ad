"""What is committed is never lost or corrupted, and no fault holds the stream for good:
the commit is all-or-nothing in memory as on disk, start-up deletes nothing it cannot
account for, faults are classified by type and code, a committed result is published after
a crash, and a hold can be seen and ended by an operator."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from synlearner.daemon.park import request_park, wait_parked
from synlearner.daemon.state import State, StateError, TaskEntry
from synlearner.stream import InMemorySource
from synlearner.stream.boundary import is_out_of_memory, is_transient
from tests.conftest import raw
from tests.unit.doubles import CentroidLearner, unit_config, unit_daemon
from tests.unit.test_loop import task_raw


def entry(task_id: str, event: int) -> TaskEntry:
    return TaskEntry(task_id, task_id, 1, f"h{task_id}", "classification",
                     f"adapters/{task_id}/{event:06d}", 0.5, 0.5, 0.9, None, 1, 2, 0)


def record(state: State, task_id: str, answers: dict[str, str] | None = None) -> str | None:
    e = entry(task_id, state.next_event)
    (state.root / e.adapter).mkdir(parents=True)
    row = {x.task_id: 0.8 for x in state.entries} | {task_id: 0.9}
    return state.record(e, row, ({task_id: 0.7}, 0.4), answers, None, lambda m: f"{m['acc']}")


def snapshot(state: State) -> Any:
    return (list(state.entries), [list(r) for r in state.matrix],
            [list(r) for r in state.agnostic], dict(state.answers), dict(state.consolidated),
            state.unpublished())


class FailingAt:
    """A connection that fails the `n`-th statement (counting from 0) of its first
    transaction, COMMIT included, with `error`."""

    def __init__(self, db: sqlite3.Connection, n: int, error: Exception) -> None:
        self.db, self.n, self.error, self.count, self.done = db, n, error, 0, False

    def _maybe_fail(self, sql: str) -> None:
        if self.done or sql.strip().upper() == "ROLLBACK":
            return
        self.count += 1
        self.done = sql.strip().upper() == "COMMIT"
        if self.count - 1 == self.n:
            raise self.error

    def execute(self, sql: str, *args: Any) -> Any:
        self._maybe_fail(sql)
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._maybe_fail(sql)
        return self.db.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def fail_commit_once(daemon: Any, when: Any, statement: int) -> None:
    """The first commit for which `when(run)` holds fails at its `statement`-th SQL
    statement (a corrupt page, as SQLite says it)."""
    real, original, failed = daemon.state.db, daemon.runner._commit, []

    def commit(run: Any, ctx: Any) -> None:
        if when(run) and not failed:
            failed.append(run.task.task_id)
            daemon.state.db = FailingAt(real, statement, sqlite3.DatabaseError("malformed"))
        try:
            original(run, ctx)
        finally:
            daemon.state.db = real

    daemon.runner._commit = commit


def test_a_commit_that_fails_at_any_statement_changes_nothing(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    record(state, "a")
    record(state, "b", answers={"a": "b"})
    statements = FailingAt(state.db, 10**6, RuntimeError)  # type: ignore[arg-type]
    real = state.db
    state.db = statements  # type: ignore[assignment]
    record(state, "probe")  # count the statements of one commit
    state.db = real
    state = State.load(tmp_path)
    before = snapshot(state)
    assert statements.count >= 8
    for n in range(statements.count):
        for error in (sqlite3.OperationalError("disk I/O error"), OSError(28, "full")):
            state.db = FailingAt(real := state.db, n, error)  # type: ignore[arg-type]
            with pytest.raises(type(error)):
                record(state, f"c{n}")
            state.db = real
            assert snapshot(state) == before, f"statement {n}"
            assert snapshot(State.read(tmp_path))[:5] == before[:5], f"statement {n}"
    assert record(state, "d") is not None  # the next commit is the next event
    state.close()
    again = State.load(tmp_path)
    assert [e.task_id for e in again.entries] == ["a", "b", "probe", "d"]
    assert [len(r) for r in again.matrix] == [2, 3, 4, 4]
    assert again.metrics().acc > 0


def test_a_failed_commit_in_the_daemon_leaves_no_phantom_task(tmp_path: Path) -> None:
    """A failure at the commit is the storage's, never the message's: the stream holds and
    the task is learned again once it can commit, as the next event; nothing of the failed
    attempt shows, and the state opens again."""
    learner = CentroidLearner()
    source = InMemorySource([task_raw("a"), task_raw("b"), task_raw("c")])
    daemon = unit_daemon(unit_config(tmp_path), source, learner)
    fail_commit_once(daemon, lambda run: run.event == 2, statement=2)
    daemon.run()
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("a", "learned"), ("b", "learned"), ("c", "learned")]
    assert learner.trained == ["a", "b", "b", "c"]  # b again after its failed commit
    assert daemon.metrics.backoffs.labels(operation="learn")._value.get() == 1
    daemon.state.close()
    state = State.load(tmp_path)
    assert [e.task_id for e in state.entries] == ["a", "b", "c"]
    assert [len(r) for r in state.matrix] == [2, 3, 3]
    assert state.unpublished() == []


def test_a_database_locked_by_another_process_holds_the_task_until_it_commits(
    tmp_path: Path,
) -> None:
    learner = CentroidLearner()
    source = InMemorySource([task_raw("a"), task_raw("b")])
    daemon = unit_daemon(unit_config(tmp_path), source, learner)
    assert daemon.state.db is not None
    daemon.state.db.execute("PRAGMA busy_timeout=20")
    other = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # a writer elsewhere holds the lock
    held: list[bool] = []

    def release() -> None:
        deadline = time.monotonic() + 30
        while not daemon.held and time.monotonic() < deadline:
            time.sleep(0.01)
        held.append(daemon.held and daemon.metrics.stream_held._value.get() == 1)
        time.sleep(0.3)
        other.execute("ROLLBACK")

    thread = threading.Thread(target=release)
    thread.start()
    daemon.run()
    thread.join()
    assert held == [True]
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("a", "learned"), ("b", "learned")]
    backoffs = daemon.metrics.backoffs
    assert sum(backoffs.labels(operation=op)._value.get() for op in ("persist", "commit")) >= 1
    assert not daemon.held and daemon.metrics.stream_held._value.get() == 0
    assert learner.trained == ["a", "b"]  # held at the commit: not trained again


def test_start_without_the_database_deletes_nothing_and_says_how_to_go_on(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    record(state, "a")
    record(state, "b")
    (tmp_path / "tasks" / "a.v1.json").write_text("{}")
    state.close()
    (tmp_path / "state.sqlite3").rename(tmp_path / "state.sqlite3.moved")
    for name in ("state.sqlite3-wal", "state.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(StateError, match="missing but .* holds 2 adapter folders.*--reset"):
        State.load(tmp_path, keep_versions=2)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == files
    (tmp_path / "state.sqlite3").write_bytes(b"")  # an empty file is no database either
    with pytest.raises(StateError, match="is empty"):
        State.load(tmp_path)
    (tmp_path / "state.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match="cannot be read"):
        State.load(tmp_path)
    assert (tmp_path / "adapters" / "a" / "000001").is_dir()
    fresh = State.load(tmp_path, reset=True)  # moved aside, never deleted
    assert fresh.entries == []
    orphaned, = tmp_path.glob("orphaned-*")
    assert (orphaned / "adapters" / "a" / "000001").is_dir()
    assert (orphaned / "tasks" / "a.v1.json").exists()


def test_prune_deletes_only_what_the_entries_account_for(tmp_path: Path) -> None:
    state = State.load(tmp_path, keep_versions=1)
    record(state, "a")
    leftover = state.adapter_dir("b", state.next_event)  # an attempt that did not commit
    state.will_write([str(leftover.relative_to(tmp_path)), state.task_file("b", 1)])
    leftover.mkdir(parents=True)
    (tmp_path / state.task_file("b", 1)).write_text("{}")
    unknown = state.adapter_dir("c", state.next_event)  # no entry names it, nor an attempt
    unknown.mkdir(parents=True)
    state.close()
    State.load(tmp_path).close()
    assert not leftover.exists() and not (tmp_path / "tasks" / "b.v1.json").exists()
    assert unknown.exists() and (tmp_path / "adapters" / "a" / "000001").exists()


def test_a_database_restored_from_a_backup_loses_no_adapter(tmp_path: Path) -> None:
    """The start-up error says to put the database back from a backup: the adapters of the
    events after the backup are then named by no entry, and are kept, however many events
    are committed after it."""
    state = State.load(tmp_path)
    record(state, "a")
    state.close()
    backup = (tmp_path / "state.sqlite3").read_bytes()
    state = State.load(tmp_path)
    record(state, "b")
    record(state, "c")
    state.close()
    for name in ("state.sqlite3-wal", "state.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "state.sqlite3").write_bytes(backup)
    state = State.load(tmp_path)
    record(state, "d")  # commits as event 2, where b's folder is
    record(state, "e")
    state.close()
    kept = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "adapters").glob("*/*"))
    assert kept == ["adapters/a/000001", "adapters/b/000002", "adapters/c/000003",
                    "adapters/d/000002", "adapters/e/000003"]


def test_faults_are_classified_by_type_and_code_never_by_text() -> None:
    assert not is_transient(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_transient(ValueError("train: labels ['CUDA out of memory'] have no examples"))
    assert not is_out_of_memory(RuntimeError("CUDA out of memory"))
    busy = sqlite3.connect(":memory:")
    assert is_transient(OSError(28, "No space left on device"))
    for code in (5, 6, 10, 13, 266):  # BUSY, LOCKED, IOERR, FULL, IOERR_READ
        err = sqlite3.OperationalError("x")
        err.sqlite_errorcode = code  # type: ignore[attr-defined]
        assert is_transient(err), code
    try:
        busy.execute("SELECT * FROM no_such_table")
    except sqlite3.OperationalError as exc:
        assert not is_transient(exc)  # a bug, not the machine
    torch_oom = type("OutOfMemoryError", (RuntimeError,), {"__module__": "torch"})
    fake_oom = type("OutOfMemoryError", (RuntimeError,), {"__module__": "producer"})
    assert is_out_of_memory(torch_oom("x")) and is_out_of_memory(MemoryError())
    assert not is_out_of_memory(fake_oom("x")) and not is_transient(torch_oom("x"))


def test_a_label_named_like_a_resource_fault_is_dead_lettered_not_held(tmp_path: Path) -> None:
    learner = CentroidLearner()
    poison = raw("p", labels=["CUDA out of memory", "positive"],
                 train=[{"input": "great", "output": "positive"},
                        {"input": "fine", "output": "positive"}])
    source = InMemorySource([poison, task_raw("a")])
    daemon = unit_daemon(unit_config(tmp_path), source, learner)
    daemon.run()
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("p", "failed"), ("a", "learned")]
    assert daemon.metrics.backoffs.labels(operation="learn")._value.get() == 0


class OutOfMemoryError(RuntimeError):
    __module__ = "torch"


def test_a_task_out_of_memory_on_every_try_ends_as_a_dead_letter(tmp_path: Path) -> None:
    learner = CentroidLearner()
    tries: list[str] = []
    fit = learner._fit

    def oom(task: Any, replay: Any) -> Any:
        tries.append(task.task_id)
        if task.task_id == "big":
            raise OutOfMemoryError("CUDA out of memory")
        return fit(task, replay)

    learner._fit = oom  # type: ignore[method-assign]
    source = InMemorySource([task_raw("big"), task_raw("a")])
    daemon = unit_daemon(unit_config(tmp_path, **{"stream.max_attempts": 3}), source, learner)
    daemon.run()
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("big", "failed"), ("a", "learned")]
    assert tries.count("big") == 3
    assert source.dead_letters[0][1].startswith("out of memory on 3 tries: OutOfMemoryError")
    assert daemon.metrics.dead_letters.labels(reason="out_of_memory")._value.get() == 1


def test_an_operator_parks_a_held_task_and_the_stream_goes_on(tmp_path: Path) -> None:
    learner = CentroidLearner()
    fit = learner._fit

    def disk_full(task: Any, replay: Any) -> Any:
        if task.task_id == "stuck":
            raise OSError(28, "No space left on device")
        return fit(task, replay)

    learner._fit = disk_full  # type: ignore[method-assign]
    source = InMemorySource([task_raw("stuck"), task_raw("a")])
    cfg = unit_config(tmp_path, **{"stream.backoff_max_s": 0.2})
    daemon = unit_daemon(cfg, source, learner)
    parked: list[bool] = []

    def operator() -> None:
        deadline = time.monotonic() + 30
        while not daemon.held and time.monotonic() < deadline:
            time.sleep(0.01)
        request_park(tmp_path, "another-task", 30)  # names another task: left alone
        time.sleep(0.5)
        parked.append(daemon.held)
        parked.append(wait_parked(request_park(tmp_path, "stuck", 10), 10))

    thread = threading.Thread(target=operator)
    thread.start()
    daemon.run()
    thread.join()
    assert parked == [True, True]
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("stuck", "failed"), ("a", "learned")]
    reason = source.dead_letters[0][1]
    assert reason.startswith("parked by an operator while holding: OSError"), reason
    assert not (tmp_path / "park-request.json").exists()


def test_a_result_committed_before_a_crash_is_published_on_the_next_start(
    tmp_path: Path,
) -> None:
    learner = CentroidLearner()
    cfg = unit_config(tmp_path)
    source = InMemorySource([task_raw("a"), task_raw("b")])
    daemon = unit_daemon(cfg, source, learner)

    class Crash(BaseException):
        pass

    def crash(*_: Any) -> None:
        raise Crash  # the process dies between the commit and the publish

    daemon.settler.acknowledge = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        daemon.run()
    daemon.state.close()
    assert len(State.read(tmp_path).entries) == 1
    again = InMemorySource([task_raw("a"), task_raw("b")])  # "a" is redelivered
    restarted = unit_daemon(cfg, again, CentroidLearner())
    restarted.run()
    results = restarted.results.results  # type: ignore[attr-defined]
    assert [(r.task_id, r.status) for r in results] == [
        ("a", "learned"), ("a", "duplicate"), ("b", "learned")]
    assert results[0].metrics["final"] == 1.0 and "acc" in results[0].metrics
    assert Path(results[1].adapter_path).is_absolute()
    assert results[1].adapter_path == results[0].adapter_path
    assert restarted.state.unpublished() == []


def test_park_from_the_command_line_says_when_nothing_is_held(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from synlearner.daemon.tools import cli

    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path}\n")
    started = time.monotonic()
    assert cli.main(["--config", str(config), "dead-letters", "park", "--task", "x",
                     "--wait", "1"]) == 1
    assert time.monotonic() - started < 15
    assert "not holding task x" in capsys.readouterr().err
    assert not (tmp_path / "park-request.json").exists()  # withdrawn


def test_a_failed_attempt_leaves_the_shared_adapter_as_committed(tmp_path: Path) -> None:
    """One adapter for every task: what a failed attempt trained into it is undone, so the
    next task trains on from what was committed."""
    learner = CentroidLearner()
    fit = learner._fit
    seen: dict[str, list[list[str]]] = {}

    def recording_fit(task: Any, replay: Any) -> Any:
        seen.setdefault(task.task_id, []).append(sorted(learner.adapters.get("@shared", {})))
        return fit(task, replay)

    learner._fit = recording_fit  # type: ignore[method-assign]
    cats = raw("b", labels=["cat", "dog"], train=[{"input": "meow", "output": "cat"},
                                                   {"input": "woof", "output": "dog"}],
               eval=[{"input": "meow meow", "output": "cat"}])
    source = InMemorySource([task_raw("a"), cats, task_raw("c")])
    cfg = unit_config(tmp_path, **{"learner.adapters": "shared", "learner.task_agnostic": False})
    daemon = unit_daemon(cfg, source, learner)
    fail_commit_once(daemon, lambda run: run.task.task_id == "b", statement=1)  # after b trained
    daemon.run()
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("a", "learned"), ("b", "learned"), ("c", "learned")]
    # b's retry trains on from what a committed, not from its failed attempt's training
    assert seen["b"] == [["negative", "positive"], ["negative", "positive"]]


def test_a_database_locked_at_start_is_no_reason_to_reset(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    record(state, "a")
    state.close()
    other = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None, timeout=0.1)
    other.execute("BEGIN EXCLUSIVE")
    try:
        for reset in (False, True):
            with pytest.raises(StateError, match="cannot be opened now") as raised:
                State.load(tmp_path, reset=reset)
            assert "--reset" not in str(raised.value)
    finally:
        other.execute("ROLLBACK")
    assert not list(tmp_path.glob("orphaned-*"))
    assert [e.task_id for e in State.load(tmp_path).entries] == ["a"]


def test_a_message_held_before_it_is_decoded_can_be_parked_and_stale_requests_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synlearner.daemon import loop
    from synlearner.daemon.park import take_park_request
    from synlearner.stream.errors import SourceUnavailable

    stale = request_park(tmp_path, None, wait_s=-1)  # left by a command that was cut off
    assert not take_park_request(tmp_path, "anything") and not stale.exists()
    real_decode = loop.decode

    def unreadable(raw_bytes: bytes, limits: Any) -> Any:  # its data file: EIO every time
        if b'"stuck"' in raw_bytes:
            raise SourceUnavailable("data.train: OSError: [Errno 5] Input/output error")
        return real_decode(raw_bytes, limits)

    monkeypatch.setattr(loop, "decode", unreadable)
    source = InMemorySource([task_raw("stuck"), task_raw("a")])
    daemon = unit_daemon(unit_config(tmp_path, **{"stream.backoff_max_s": 0.2}), source,
                         CentroidLearner())

    def operator() -> None:
        deadline = time.monotonic() + 30
        while not daemon.held and time.monotonic() < deadline:
            time.sleep(0.01)
        wait_parked(request_park(tmp_path, None, 10), 10)

    thread = threading.Thread(target=operator)
    thread.start()
    daemon.run()
    thread.join()
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("", "invalid"), ("a", "learned")]
    assert source.dead_letters[0][1] == ("parked by an operator while holding: SourceUnavailable: "
                                         "data.train: OSError: [Errno 5] Input/output error")
