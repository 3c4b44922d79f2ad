"""The memory's SQLite layout: the schema, a record's row, the transaction that bumps the
generation counter, and queries shared by the store and its readers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synlearner.memory.base import Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, kind TEXT NOT NULL, instruction TEXT NOT NULL,
    labels TEXT NOT NULL, examples INTEGER NOT NULL, centroid BLOB NOT NULL,
    updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, kind TEXT NOT NULL,
    split TEXT NOT NULL, input TEXT NOT NULL, target TEXT NOT NULL, prediction TEXT NOT NULL,
    correct INTEGER NOT NULL, loss REAL NOT NULL, ts REAL NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_task ON records(task_id, kind);
CREATE INDEX IF NOT EXISTS records_kind_ts ON records(kind, ts);
"""
COLS = "id, task_id, kind, split, input, target, prediction, correct, loss, ts"


def row_to_record(row: tuple[Any, ...]) -> Record:
    rid, task_id, kind, split, inp, target, pred, correct, loss, ts = row
    return Record(
        task_id=task_id, input=inp, target=target, kind="error" if kind == "error" else "experience",
        split=split, prediction=pred, correct=bool(correct), loss=float(loss), timestamp=float(ts),
        id=int(rid),
    )


class Tx:
    """One SQLite transaction that also bumps the memory's generation counter."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")


def where(**equal: str | tuple[str, ...] | None) -> tuple[str, list[str]]:
    """A WHERE clause over `records` (`exclude_task` is the one inequality; a tuple is any
    of its values; `task_kind` keeps the records of tasks of that kind, by a subquery on
    `tasks`, so that it costs one SQL variable however many tasks are of that kind)."""
    clauses: list[str] = ["1=1"]
    args: list[str] = []
    for column, value in equal.items():
        if column == "task_kind":
            if value is not None:
                clauses.append("task_id IN (SELECT t.task_id FROM tasks AS t WHERE t.kind = ?)")
                args.append(str(value))
        elif isinstance(value, tuple):
            clauses.append(f"{column} IN ({','.join('?' * len(value))})")
            args += value
        elif value is not None:
            clauses.append("task_id != ?" if column == "exclude_task" else f"{column} = ?")
            args.append(value)
    return " AND ".join(clauses), args


def records_by_id(db: sqlite3.Connection, ids: Iterable[int]) -> dict[int, Record]:
    ids = list(ids)
    out: dict[int, Record] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.execute(f"SELECT {COLS} FROM records WHERE id IN ({marks})", chunk):
            out[int(row[0])] = row_to_record(row)
    return out


def read_counts(root: Path) -> dict[str, int]:
    """Record counts of a memory on disk, read-only, without an embedder."""
    path = Path(root) / "memory.sqlite3"
    if not path.exists():
        return {"experience": 0, "error": 0, "records": 0, "tasks": 0}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = dict(db.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind").fetchall())
        tasks = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    finally:
        db.close()
    exp, err = int(rows.get("experience", 0)), int(rows.get("error", 0))
    return {"experience": exp, "error": err, "records": exp + err, "tasks": int(tasks)}
