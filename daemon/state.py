"""The daemon's durable state: learned tasks, their definitions, the accuracy matrices.

`state.sqlite3` (WAL, synchronous=FULL) holds one row per learning event and one per
matrix cell. A task's commit is one transaction that appends its entry, its matrix rows and
the answers it changes, after its adapter and memory writes are durable: that transaction is
the commit point. It writes O(tasks) rows, not the whole N x N matrices. A `state.json`
left by an older version is imported once (and kept as `state.json.imported`). Task
definitions are kept under `tasks/` so every seen task can be evaluated again.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synlearner.daemon.transfer import TransferMetrics, sparse_transfer_metrics, transfer_metrics
from synlearner.learner.methods import REGISTRY
from synlearner.stream.boundary import is_transient
from synlearner.stream.io import write_atomic
from synlearner.stream.schema import Limits, Task, parse_task

log = logging.getLogger("synlearner.daemon")
STATE_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (event INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    matrix TEXT NOT NULL, row INTEGER NOT NULL, col INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (matrix, row, col)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS answers (task_id TEXT PRIMARY KEY, adapter_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consolidated (kind TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (event INTEGER PRIMARY KEY, body TEXT NOT NULL);
"""
_MATRICES = ("matrix", "agnostic")


class StateError(RuntimeError):
    """The state directory cannot be opened as it is; the message says what was found and
    how to go on."""


def _has_version(path: Path) -> bool:
    """Whether `path` is a state database that has been written (it names its version)."""
    if not path.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT value FROM meta WHERE key='version'").fetchone() is not None
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        # a database without the state's tables was never written; any other failure (a
        # lock, an I/O error) is for the real open to report
        return (getattr(exc, "sqlite_errorcode", 1) & 0xFF) != 1  # SQLITE_ERROR: no table
    except sqlite3.DatabaseError:
        return True  # not a database: opening it says what is wrong with it


def learned_files(root: Path) -> list[str]:
    """What a state dir holds of what was learned, in words (empty: nothing)."""
    found = []
    adapters = [d for d in (root / "adapters").glob("*/*") if d.is_dir()] + [
        d for d in (root / "adapters").glob("*") if (d / "adapter_config.json").exists()]
    if adapters:
        found.append(f"{len(adapters)} adapter folders under adapters/")
    tasks = list((root / "tasks").glob("*.json"))
    if tasks:
        found.append(f"{len(tasks)} task files under tasks/")
    if (root / "state.sqlite3-wal").exists():
        found.append("a write-ahead log (state.sqlite3-wal)")
    return found


def _move_aside(root: Path) -> Path:
    """Move a state dir's adapters, task files and database to `orphaned-<time>/` in it (a
    reset). The memory stays: every example seen is kept, whatever the state says."""
    dest = root / time.strftime(f"orphaned-%Y%m%d-%H%M%S-{time.time_ns() % 10**6:06d}")
    dest.mkdir()
    # the database first: a crash part-way leaves the adapters where a start refuses them
    for name in ("state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm", "adapters",
                 "tasks"):
        if (root / name).exists():
            (root / name).replace(dest / name)
    return dest


@dataclass
class TaskEntry:
    task_id: str
    column: str  # the matrix column: the task id, or "<task_id>#v<N>" for a new version
    version: int
    content_hash: str
    kind: str
    adapter: str  # relative to the state dir
    zero_shot: float
    initial: float
    final: float
    init_from: str | None
    steps: int
    train_examples: int
    replay_examples: int
    seconds: dict[str, float] = field(default_factory=dict)
    learned_at: float = 0.0
    adapter_key: str = ""  # the learner's adapter key: the task id, or a shared adapter's
    probe: dict[str, Any] | None = None  # nearest-vs-fresh start check (`InitProbe` fields)
    curve: list[list[float]] = field(default_factory=list)  # [step, eval accuracy] pairs
    task_file: str = ""  # the task's definition, relative to the state dir ("": tasks/<id>.json)
    # each learning method's figures by its name (`learner/method.py`), and a synthesis
    # task's own under "synthesis"
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, body: dict[str, Any]) -> TaskEntry:
        """An entry as stored; one stored before methods kept their figures in `extras` has
        them moved there."""
        body = dict(body)
        extras = body.setdefault("extras", {})
        for method in REGISTRY.values():  # each method knows where it kept its figures
            if method.stored_as and (stored := body.pop(method.stored_as, None)):
                extras[method.name] = method.restored(stored)
        if synthesis := body.pop("synthesis", None):
            extras["synthesis"] = synthesis
        return cls(**body)


@dataclass
class State:
    root: Path
    entries: list[TaskEntry] = field(default_factory=list)  # one per learning event, in order
    matrix: list[list[float | None]] = field(default_factory=list)
    # the same matrix for task-agnostic answers (no task id: consolidated adapter or routing);
    # a row is None where that event did not score them (`learner.consolidate_every`)
    agnostic: list[list[float | None]] = field(default_factory=list)
    # task id -> the adapter key that answers for it, where that is not its own adapter (a
    # later adapter of its lineage that does better on its train data)
    answers: dict[str, str] = field(default_factory=dict)
    # task kind -> the committed consolidated adapter (relative to the state dir)
    consolidated: dict[str, str] = field(default_factory=dict)
    db: sqlite3.Connection | None = field(default=None, repr=False)
    keep_versions: int = 1  # adapter folders kept per key: the latest and the ones before

    @property
    def path(self) -> Path:
        return self.root / "state.sqlite3"

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def load(cls, root: Path, keep_versions: int = 1, reset: bool = False) -> State:
        """Open the state dir for writing (the daemon): creates it, imports a `state.json`
        of an older version, and prunes what the committed entries account for.

        A state dir whose database is missing, empty or unreadable while it holds what was
        learned (adapters, task files) is never opened as a new state: that would
        turn a lost database into the loss of everything learned. It raises `StateError`
        saying what was found; with `reset`, what was found is moved aside (never deleted)
        and a new state begins.
        """
        root.mkdir(parents=True, exist_ok=True)
        state = cls(root=root, keep_versions=keep_versions)
        legacy = root / "state.json"
        if not legacy.exists() and not _has_version(state.path):
            found = learned_files(root)
            if found and not reset:
                raise StateError(
                    f"{state.path} is {'missing' if not state.path.exists() else 'empty'} "
                    f"but {root} holds {', '.join(found)}: what was learned cannot be "
                    f"accounted for without it, so nothing was opened or deleted. Put "
                    f"state.sqlite3 (and its -wal file, if there is one) back from a backup, "
                    f"or start with --reset to begin a new state (what was found is moved "
                    f"to {root}/orphaned-<time>/, not deleted)")
            if found:
                moved = _move_aside(root)
                log.warning("state: --reset: moved what an unaccounted state held to %s", moved)
        (root / "tasks").mkdir(exist_ok=True)
        (root / "adapters").mkdir(exist_ok=True)
        try:
            state.db = sqlite3.connect(state.path, isolation_level=None, check_same_thread=False)
            state.db.execute("PRAGMA journal_mode=WAL")
            state.db.execute("PRAGMA synchronous=FULL")
            state.db.executescript(_SCHEMA)
            state.db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)",
                             (str(STATE_VERSION),))
            if legacy.exists() and not state.db.execute("SELECT 1 FROM entries").fetchone():
                state._import(json.loads(legacy.read_text()))
                state.save()
                legacy.replace(root / "state.json.imported")
            else:
                state._read()
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError) as exc:
            state.close()
            damaged = (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (11, 26)  # CORRUPT, NOTADB
            if is_transient(exc) and not damaged:  # locked elsewhere, a disk error: not its content
                raise StateError(f"{state.path} cannot be opened now ({type(exc).__name__}: "
                                 f"{exc}); nothing was changed. Try again once the other "
                                 "process or the disk lets go of it") from None
            if reset:
                log.warning("state: --reset: %s cannot be read (%s); moved aside to %s",
                            state.path, exc, _move_aside(root))
                return cls.load(root, keep_versions)
            raise StateError(f"{state.path} cannot be read ({type(exc).__name__}: {exc}); "
                             "nothing was changed. Put it back from a backup, or start with "
                             "--reset to begin a new state (the old one is moved aside, not "
                             "deleted)") from None
        state._prune_after_commit(report=True)
        return state

    @classmethod
    def read(cls, root: Path) -> State:
        """Read a state dir without changing it (status, reports; safe beside a daemon)."""
        state = cls(root=root)
        if (root / "state.sqlite3").exists():
            state.db = sqlite3.connect(f"file:{root / 'state.sqlite3'}?mode=ro", uri=True,
                                       check_same_thread=False)
            state._read()
            state.db.close()
            state.db = None
        elif (root / "state.json").exists():
            state._import(json.loads((root / "state.json").read_text()))
        return state

    def _import(self, data: dict[str, Any]) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{self.root}: unsupported state version {data.get('version')}")
        self.entries = [TaskEntry.of(e) for e in data["entries"]]
        self.matrix = data["matrix"]
        self.agnostic = data.get("agnostic", [])
        self.answers = data.get("answers", {})
        self.consolidated = data.get("consolidated", {})
        if len(self.agnostic) != len(self.matrix):  # not kept before: nothing measured
            self.agnostic = [[None] * len(row) for row in self.matrix]

    def _read(self) -> None:
        assert self.db is not None
        version = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        if version is not None and int(version[0]) != STATE_VERSION:
            raise ValueError(f"{self.path}: unsupported state version {version[0]}")
        self.entries = [TaskEntry.of(json.loads(body)) for (body,) in
                        self.db.execute("SELECT body FROM entries ORDER BY event")]
        n = len(self.entries)
        shape: list[list[float | None]] = [[None] * min(i + 2, n) for i in range(n)]
        self.matrix = [list(r) for r in shape]
        self.agnostic = [list(r) for r in shape]
        for name, i, j, value in self.db.execute("SELECT matrix, row, col, value FROM cells"):
            if i < n and j < len(shape[i]):
                (self.matrix if name == "matrix" else self.agnostic)[i][j] = value
        self.answers = dict(self.db.execute("SELECT task_id, adapter_key FROM answers"))
        self.consolidated = dict(self.db.execute("SELECT kind, path FROM consolidated"))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole or rolled back whole (a failed COMMIT, a
        full disk, a lock held elsewhere leave the database as it was)."""
        if self.db is None:
            raise RuntimeError(f"{self.root}: state opened read-only")
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL)
                db.execute("ROLLBACK")
            raise

    def _put_cells(self, db: sqlite3.Connection, name: str, i: int,
                   values: dict[int, float | None]) -> None:
        db.executemany("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?)",
                       [(name, i, j, v) for j, v in values.items() if v is not None])
        db.executemany("DELETE FROM cells WHERE matrix=? AND row=? AND col=?",
                       [(name, i, j) for j, v in values.items() if v is None])

    @staticmethod
    def _put_answers(db: sqlite3.Connection, answers: dict[str, str],
                     consolidated: dict[str, str]) -> None:
        db.execute("DELETE FROM answers")
        db.executemany("INSERT INTO answers VALUES (?, ?)", list(answers.items()))
        db.executemany("INSERT OR REPLACE INTO consolidated VALUES (?, ?)",
                       list(consolidated.items()))

    def save(self) -> None:
        """Write the whole state in one transaction (an import, or the joint strategy)."""
        with self._tx() as db:
            for table in ("entries", "cells", "answers", "consolidated"):
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(STATE_VERSION),))
            db.executemany("INSERT INTO entries VALUES (?, ?)",
                           [(i, json.dumps(asdict(e))) for i, e in enumerate(self.entries)])
            for name in _MATRICES:
                for i, row in enumerate(getattr(self, name)):
                    self._put_cells(db, name, i, dict(enumerate(row)))
            self._put_answers(db, self.answers, self.consolidated)

    def as_dict(self) -> dict[str, Any]:
        """The whole state as one JSON-able document (reports, benchmarks)."""
        return {"version": STATE_VERSION, "entries": [asdict(e) for e in self.entries],
                "matrix": self.matrix, "agnostic": self.agnostic, "answers": self.answers,
                "consolidated": self.consolidated}

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    # -- files of a learning event -------------------------------------------------------
    # Everything a learning event writes before its commit goes to paths of its own (event
    # number = its row in the matrix), so a version that fails or crashes before the commit
    # never touches what is committed; `prune` drops what no committed entry refers to.
    @property
    def next_event(self) -> int:
        return len(self.entries) + 1

    def adapter_dir(self, key: str, event: int | None = None) -> Path:
        """`adapters/<key>/<event>/` (None: the flat layout of state dirs written before)."""
        base = self.root / "adapters" / key
        return base if event is None else base / f"{event:06d}"

    @staticmethod
    def task_file(task_id: str, version: int) -> str:
        """Where the definition of `version` of a task is kept, relative to the root."""
        return f"tasks/{task_id}.v{version}.json"

    def save_task(self, task: Task, version: int) -> str:
        """Write the task's definition for `version`; returns its path relative to the root."""
        path = self.root / self.task_file(task.task_id, version)
        write_atomic(path, json.dumps(task.to_message()).encode())
        return str(path.relative_to(self.root))

    def task_path(self, task_id: str) -> Path:
        entry = self.latest(task_id)
        if entry is not None and entry.task_file:
            return self.root / entry.task_file
        return self.root / "tasks" / f"{task_id}.json"

    def load_task(self, task_id: str) -> Task:
        limits = Limits(max_message_bytes=2**40, max_json_depth=2**10, max_train_examples=2**31,
                        max_eval_examples=2**31, max_field_chars=2**31, max_labels=2**31)
        return parse_task(self.task_path(task_id).read_bytes(), limits)

    # -- what may be deleted -------------------------------------------------------------
    # A learning event writes its adapter folders and task file before its commit; it names
    # them first (`will_write`, durable), so that a failed or crashed attempt's leftovers are
    # known as such. `prune` deletes only what the database accounts for: versions its entries
    # name and no longer need, merges it names a later one of, and the named leftovers of an
    # attempt that did not commit. Anything else (a folder of a database restored from an older
    # backup, a folder put there by hand) is kept and logged.
    def will_write(self, paths: Sequence[str]) -> None:
        """Name the paths (relative to the root) an attempt is about to write."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key='inflight'").fetchone()
            named = sorted({*json.loads(row[0] if row else "[]"), *paths})
            db.execute("INSERT OR REPLACE INTO meta VALUES ('inflight', ?)", (json.dumps(named),))

    def _inflight(self) -> set[str]:
        if self.db is None:
            return set()
        row = self.db.execute("SELECT value FROM meta WHERE key='inflight'").fetchone()
        return set(json.loads(row[0])) if row else set()

    def prune(self, report: bool = False) -> int:
        """Delete what the database accounts for and no longer needs (see above): versions of
        an adapter key older than its `keep_versions` latest, superseded merges, and the
        leftovers of an attempt that did not commit. `report`: log what is kept because no
        entry accounts for it. Returns the folders removed."""
        n = self.keep_versions
        keep = {e.adapter for e in self._latest_per_key(n=n)} | set(self.consolidated.values())
        keep |= {e.task_file for e in self._latest_per_key(by_task=True, n=n) if e.task_file}
        named = {e.adapter for e in self.entries} | {e.task_file for e in self.entries}
        merged = {Path(p).parent.name: int(Path(p).name) for p in self.consolidated.values()
                  if Path(p).name.isdigit()}
        leftovers = self._inflight() - named - keep
        removed = 0
        for key_dir in (self.root / "adapters").iterdir():
            for event_dir in key_dir.iterdir() if key_dir.is_dir() else []:
                rel = str(event_dir.relative_to(self.root))
                if not (event_dir.is_dir() and event_dir.name.isdigit()) or rel in keep:
                    continue
                superseded_merge = int(event_dir.name) < merged.get(key_dir.name, -1)
                if rel in named or rel in leftovers or superseded_merge:
                    shutil.rmtree(event_dir, ignore_errors=True)
                    removed += 1
                elif report:
                    log.warning("state: %s is named by no entry of the database; kept", rel)
        for path in (self.root / "tasks").glob("*.v*.json"):
            rel = str(path.relative_to(self.root))
            if rel not in keep and (rel in named or rel in leftovers):
                path.unlink(missing_ok=True)
        if self.db is not None and self._inflight():
            with self._tx() as db:
                db.execute("DELETE FROM meta WHERE key='inflight'")
        return removed

    def _latest_per_key(self, by_task: bool = False, n: int = 1) -> list[TaskEntry]:
        """The `n` latest entries of each adapter key (or task id)."""
        per: dict[str, list[TaskEntry]] = {}
        for entry in self.entries:
            per.setdefault(entry.task_id if by_task else (entry.adapter_key or entry.task_id),
                           []).append(entry)
        return [e for entries in per.values() for e in entries[-n:]]

    # -- queries -------------------------------------------------------------------------
    def latest(self, task_id: str) -> TaskEntry | None:
        for entry in reversed(self.entries):
            if entry.task_id == task_id:
                return entry
        return None

    def answer_key(self, task_id: str) -> str:
        """The adapter key that answers for `task_id` (task-aware)."""
        if task_id in self.answers:
            return self.answers[task_id]
        entry = self.latest(task_id)
        return (entry.adapter_key or task_id) if entry else task_id

    def is_learned(self, task_id: str, content_hash: str) -> bool:
        entry = self.latest(task_id)
        return entry is not None and entry.content_hash == content_hash

    def task_ids(self) -> list[str]:
        """Distinct learned task ids, in first-learned order."""
        return list(dict.fromkeys(e.task_id for e in self.entries))

    def metrics(self) -> TransferMetrics:
        return transfer_metrics(self.matrix, [e.zero_shot for e in self.entries])

    def agnostic_metrics(self) -> TransferMetrics | None:
        """Transfer metrics of the task-agnostic matrix over its measured rows (None when
        no row was measured)."""
        return sparse_transfer_metrics(self.agnostic, [e.zero_shot for e in self.entries])

    def agnostic_measured(self) -> bool:
        """Whether the latest event's task-agnostic row was scored."""
        return bool(self.agnostic) and any(v is not None for v in self.agnostic[-1])

    def latest_scores(self) -> dict[str, float]:
        if not self.matrix:
            return {}
        return {e.column: v for e, v in zip(self.entries, self.matrix[-1], strict=True) if v is not None}

    # -- the commit point ----------------------------------------------------------------
    # Each write below builds the new state beside the current one, commits it in one
    # transaction and only then makes it the current one: a commit that fails (a lock held
    # elsewhere, a full disk, an I/O error) leaves the state in memory exactly as on disk.
    def record(self, entry: TaskEntry, row: dict[str, float],
               agnostic: tuple[dict[str, float], float | None] | None = None,
               answers: dict[str, str] | None = None,
               consolidated: dict[str, str] | None = None,
               outbox: Callable[[dict[str, float]], str] | None = None) -> str | None:
        """Append a learning event: its matrix row (scores by task id) and R[i-1][i].

        `agnostic` is the task-agnostic row and that setting's score on the new task before
        training on it (None: not scored this event, either); `answers` are the tasks now
        answered by another adapter; `consolidated` the consolidated adapters this event
        wrote, by task kind; `outbox` makes the event's result to publish (JSON) from the
        transfer metrics with it, kept in the same transaction until `published`; returns it.
        """
        merged = {**self.consolidated, **(consolidated or {})}
        # a new version answers with its own adapter, and stops answering for others
        now_answers = {t: k for t, k in self.answers.items()
                       if t != entry.task_id and k != entry.task_id}
        now_answers.update(answers or {})
        entries = [*self.entries, entry]
        matrix, agn = list(self.matrix), list(self.agnostic)
        if matrix:
            matrix[-1] = [*matrix[-1], entry.initial]  # R[i-1][i]: before training on it
            agn[-1] = [*agn[-1], agnostic[1] if agnostic else None]
        matrix.append([row[e.task_id] for e in entries])
        agn.append([agnostic[0].get(e.task_id) if agnostic else None for e in entries])
        i = len(entries) - 1
        with self._tx() as db:  # the commit point: O(tasks) rows
            db.execute("INSERT INTO entries VALUES (?, ?)", (i, json.dumps(asdict(entry))))
            for name, rows in (("matrix", matrix), ("agnostic", agn)):
                if i > 0:
                    self._put_cells(db, name, i - 1, {i: rows[i - 1][i]})
                self._put_cells(db, name, i, dict(enumerate(rows[i])))
            self._put_answers(db, now_answers, merged)
            body = None
            if outbox is not None:
                body = outbox(transfer_metrics(matrix, [e.zero_shot for e in entries]).as_dict())
                db.execute("INSERT OR REPLACE INTO outbox VALUES (?, ?)", (i + 1, body))
        self.entries, self.matrix, self.agnostic = entries, matrix, agn
        self.answers, self.consolidated = now_answers, merged
        self._prune_after_commit()
        return body

    def record_agnostic(self, row: dict[str, float], consolidated: dict[str, str]) -> None:
        """Score the latest event's task-agnostic row later (the stream was idle), with the
        consolidated adapters merged for it."""
        merged = {**self.consolidated, **consolidated}
        latest = [row.get(e.task_id) for e in self.entries]
        with self._tx() as db:
            self._put_cells(db, "agnostic", len(self.entries) - 1, dict(enumerate(latest)))
            self._put_answers(db, self.answers, merged)
        self.agnostic = [*self.agnostic[:-1], latest]
        self.consolidated = merged
        self._prune_after_commit()

    def record_joint(self, entries: list[TaskEntry], row: dict[str, float]) -> None:
        """Record tasks learned together in one event (the multitask bound).

        Every row of the matrix is the one row of final scores: there is no "before" for a
        task, so BWT and forgetting come out 0 and FWT compares the joint result with
        zero-shot; they do not mean transfer here.
        """
        before = (self.entries, self.matrix, self.agnostic)
        self.entries = [*self.entries, *entries]
        self.matrix = [[row[e.task_id] for e in self.entries] for _ in self.entries]
        self.agnostic = [list(r) for r in self.matrix]
        try:
            self.save()
        except BaseException:
            self.entries, self.matrix, self.agnostic = before
            raise
        self._prune_after_commit()

    def _prune_after_commit(self, report: bool = False) -> None:
        """Old versions are dropped after a commit; a failure here is logged, never the
        commit's (what it left is dropped by the next prune)."""
        try:
            self.prune(report)
        except (OSError, sqlite3.Error) as exc:
            log.warning("state: pruning old adapter versions failed (%s); retried later", exc)

    # -- the result outbox -----------------------------------------------------------------
    # A result is committed with its event and dropped once published, so a crash between
    # the commit and the publish loses no `learned` result: the next start publishes it.
    def unpublished(self) -> list[tuple[int, str]]:
        """Results committed with their event and not yet published: (event, JSON)."""
        if self.db is None:
            return []
        return list(self.db.execute("SELECT event, body FROM outbox ORDER BY event"))

    def published(self, event: int) -> None:
        """The result of `event` went out: drop it from the outbox."""
        if self.db is not None:
            with self._tx() as db:
                db.execute("DELETE FROM outbox WHERE event=?", (event,))

    def summary(self) -> dict[str, Any]:
        return {"tasks": len(self.entries), **self.metrics().as_dict()}
