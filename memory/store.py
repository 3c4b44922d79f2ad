"""`ExperienceMemory`: records in SQLite, their vectors in a FAISS index kept in step.

Durability: every write is one SQLite transaction (WAL, synchronous=FULL) that also bumps a
`generation` counter. `flush()` writes the FAISS snapshot atomically together with the
generation it reflects. On open, a snapshot whose generation or size disagrees with SQLite
is discarded and the index is rebuilt from the vectors stored in SQLite, so a crash at any
point leaves a consistent memory.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from synlearner.memory import index as fx
from synlearner.memory.base import (
    Embedder,
    Hit,
    Record,
    RecordKind,
    ReplayItem,
    ReplayRequest,
    TaskInfo,
    Vectors,
)
from synlearner.memory.config import MemoryConfig
from synlearner.memory.embedders import EmbeddingCache
from synlearner.memory.profiles import Profile, TaskProfiles, describe
from synlearner.memory.records import COLS, SCHEMA, Tx, records_by_id, row_to_record, where
from synlearner.stream.io import write_atomic

log = logging.getLogger(__name__)
EXACT_FILTER_LIMIT = 5_000  # filtered searches over fewer records are exact (numpy)

class ExperienceMemory:
    """The experience and error memory (see `Memory`). It embeds what it is given with its
    own `embedder` (chosen by `memory.embedder`); callers pass texts, never vectors."""

    def __init__(self, root: Path, embedder: Embedder, config: MemoryConfig | None = None,
                 index_kind: str | None = None, capacity: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder
        self.config = config or MemoryConfig()
        self.index_kind = index_kind or self.config.index
        self.capacity = capacity or self.config.capacity
        self._embedded = EmbeddingCache(embedder)
        self._db = sqlite3.connect(self.root / "memory.sqlite3", isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._check_dim()
        self.profiles = TaskProfiles(self._db, self._tx, self.config.similarity.model_dump())
        self._index_path = self.root / "index.faiss"
        self._index = self._load_index()

    # -- opening -------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _check_dim(self) -> None:
        dim = self._meta("dim")
        if dim is None:
            with self._tx():
                self._db.execute("INSERT INTO meta VALUES ('dim', ?)", (str(self.embedder.dim),))
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        elif int(dim) != self.embedder.dim:
            raise ValueError(
                f"memory: stored vectors have dim {dim}, the embedder gives {self.embedder.dim}"
            )

    def _generation(self) -> int:
        return int(self._meta("generation") or 0)

    def _load_index(self) -> faiss.IndexIDMap2:
        snap = fx.read_snapshot(self._index_path)
        meta_path = self._index_path.with_suffix(".json")
        count = self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        if snap is not None and meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if (
                meta.get("generation") == self._generation()
                and meta.get("kind") == self.index_kind
                and snap.ntotal == count
            ):
                return snap
        log.info("memory: rebuilding the %s index from %d stored vectors", self.index_kind, count)
        return self._rebuild()

    def _rebuild(self) -> faiss.IndexIDMap2:
        index = fx.build_index(self.index_kind, self.embedder.dim)
        ids, vecs = self._vectors("SELECT id, vector FROM records ORDER BY id", ())
        fx.add_vectors(index, ids, vecs)
        return index

    def _vectors(self, sql: str, args: tuple[object, ...]) -> tuple[list[int], Vectors]:
        rows = self._db.execute(sql, args).fetchall()
        ids = [int(r[0]) for r in rows]
        if not rows:
            return ids, np.zeros((0, self.embedder.dim), dtype=np.float32)
        return ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def _tx(self) -> Tx:
        return Tx(self._db)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of `texts` by the memory's encoder; the last few lists are cached."""
        return self._embedded.embed(texts)

    # -- writing -------------------------------------------------------------------------
    def register_task(self, info: TaskInfo, texts: Sequence[str]) -> None:
        """Remember what a task asks and what its inputs look like (for `similar_tasks`)."""
        self.profiles.put(info, self.profile(info, texts))

    def profile(self, info: TaskInfo, texts: Sequence[str]) -> Profile:
        return describe(info, self.embed(texts), lambda t: self.embedder.embed(t))

    def add(self, records: Sequence[Record]) -> list[int]:
        if not records:
            return []
        vectors = self.embedder.embed([r.input for r in records])
        now = time.time()
        ids: list[int] = []
        with self._tx():
            for rec, vec in zip(records, vectors, strict=True):
                cur = self._db.execute(
                    f"INSERT INTO records ({COLS[4:]}, vector) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (rec.task_id, rec.kind, rec.split, rec.input, rec.target, rec.prediction,
                     int(rec.correct), rec.loss, rec.timestamp or now, vec.tobytes()),
                )
                ids.append(int(cur.lastrowid or 0))
        fx.add_vectors(self._index, ids, vectors)
        self._evict()
        return ids

    def forget_task(self, task_id: str) -> int:
        """Drop every record of `task_id` and its profile (used before re-learning it)."""
        ids = [r[0] for r in self._db.execute("SELECT id FROM records WHERE task_id=?", (task_id,))]
        self._delete(ids)
        with self._tx():
            self._db.execute("DELETE FROM tasks WHERE task_id=?", (task_id,))
        return len(ids)

    def adopt(self, pending: str, task_id: str) -> None:
        old = [r[0] for r in self._db.execute("SELECT id FROM records WHERE task_id=?", (task_id,))]
        with self._tx():
            self._db.execute("DELETE FROM records WHERE task_id=?", (task_id,))
            self._db.execute("UPDATE records SET task_id=? WHERE task_id=?", (task_id, pending))
            if self._db.execute("SELECT 1 FROM tasks WHERE task_id=?", (pending,)).fetchone():
                self._db.execute("DELETE FROM tasks WHERE task_id=?", (task_id,))
                self._db.execute("UPDATE tasks SET task_id=? WHERE task_id=?", (task_id, pending))
        if old and not fx.remove_ids(self._index, old):
            self._index = self._rebuild()

    def task_ids(self) -> list[str]:
        return self.profiles.ids()

    def _delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._tx():
            self._db.executemany("DELETE FROM records WHERE id=?", [(i,) for i in ids])
        if not fx.remove_ids(self._index, ids):
            self._index = self._rebuild()

    def _evict(self) -> None:
        """Over capacity: drop the oldest experience records first, errors last."""
        over = self.counts()["records"] - self.capacity
        if over <= 0:
            return
        rows = self._db.execute(
            "SELECT id FROM records ORDER BY (kind = 'error'), ts, id LIMIT ?", (over,)
        ).fetchall()
        self._delete([int(r[0]) for r in rows])

    def compact(self, vacuum_free_share: float = 0.2) -> dict[str, int]:
        """Drop duplicate records (the same task, kind, split, input, target and prediction:
        the same wrong answer made again in a later round, say), keeping the newest, so that
        none weighs more in replay and recall for being repeated; then checkpoint the WAL
        and VACUUM when free pages are over `vacuum_free_share` of the file."""
        dupes = [int(r[0]) for r in self._db.execute(
            "SELECT id FROM records WHERE id NOT IN (SELECT MAX(id) FROM records "
            "GROUP BY task_id, kind, split, input, target, prediction)")]
        self._delete(dupes)
        if dupes:
            self.flush()
        size = self._file_bytes()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        if pages and free / pages > vacuum_free_share:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"duplicates": len(dupes), "freed_bytes": max(0, size - self._file_bytes())}

    def _file_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("memory.sqlite3*") if p.is_file())

    def flush(self) -> None:
        """Persist the FAISS snapshot for the current SQLite generation."""
        fx.write_snapshot(self._index, self._index_path)
        meta = {"generation": self._generation(), "kind": self.index_kind}
        write_atomic(self._index_path.with_suffix(".json"), json.dumps(meta).encode())

    # -- reading -------------------------------------------------------------------------
    def search(
        self,
        query: Vectors,
        k: int,
        task_id: str | tuple[str, ...] | None = None,
        kind: RecordKind | None = None,
        exclude_task: str | None = None,
        split: str | tuple[str, ...] | None = None,
        task_kind: str | None = None,
    ) -> list[list[Hit]]:
        """For each query row, its `k` nearest records among those that pass the filters:
        `task_id` (an id or a tuple of ids), record `kind`, not of `exclude_task`, `split`
        (a split or a tuple of splits) and `task_kind` (records of tasks of that kind)."""
        query = np.atleast_2d(np.asarray(query, dtype=np.float32))
        filters = {"split": split, "task_id": task_id, "exclude_task": exclude_task,
                   "kind": kind, "task_kind": task_kind}
        if all(v is None for v in filters.values()):
            scores, ids = fx.search(self._index, query, k)
        else:
            scores, ids = self._filtered_search(query, k, *where(**filters))
        records = records_by_id(self._db, {int(i) for i in ids.ravel() if i >= 0})
        return [
            [Hit(records[int(i)], float(s)) for s, i in zip(srow, irow, strict=True) if int(i) in records]
            for srow, irow in zip(scores, ids, strict=True)
        ]

    def _filtered_search(
        self, query: Vectors, k: int, cond: str, args: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        n = self._db.execute(f"SELECT COUNT(*) FROM records WHERE {cond}", args).fetchone()[0]
        if n > EXACT_FILTER_LIMIT:
            allowed = [r[0] for r in self._db.execute(f"SELECT id FROM records WHERE {cond}", args)]
            return fx.search(self._index, query, k, allowed)
        ids, vecs = self._vectors(f"SELECT id, vector FROM records WHERE {cond}", tuple(args))
        return fx.exact_search(query, ids, vecs, k)

    def records(self, task_id: str | None = None, kind: RecordKind | None = None,
                split: str | tuple[str, ...] | None = None,
                task_kind: str | None = None) -> list[Record]:
        """Records in the order added; `split` a split or a tuple of splits; `task_kind`:
        only records of tasks of that kind (None: of any task)."""
        cond, args = where(split=split, task_id=task_id, kind=kind, task_kind=task_kind)
        return [row_to_record(r) for r in
                self._db.execute(f"SELECT {COLS} FROM records WHERE {cond} ORDER BY id", args)]

    def task_info(self, task_id: str) -> TaskInfo | None:
        return self.profiles.info(task_id)

    def similar_tasks(
        self, info: TaskInfo, texts: Sequence[str], k: int, exclude: str | None = None
    ) -> list[tuple[str, float]]:
        """Past tasks ranked by their similarity with the task `info` with inputs `texts`:
        what it asks, its labels and its inputs (`memory.similarity`)."""
        return self.profiles.nearest(self.profile(info, texts), k, exclude)

    def task_similarity(self) -> tuple[list[str], list[list[float]]]:
        """The similarity of every stored task with every other."""
        return self.profiles.similarity_matrix()

    def route(self, texts: Sequence[str]) -> list[str | None]:
        """For each text, the task whose input centroid is nearest (cosine); None if no task."""
        return self.profiles.route(self.embed(texts)) if texts else []

    def recall(self, task_id: str, texts: Sequence[str], seed: int = 0,
               task_kind: str | None = None) -> list[ReplayItem]:
        """Replay for a new task with inputs `texts`: `memory.replay.ratio` examples per new
        one (at most `max_examples`), chosen by `memory.replay.policy` among past tasks of
        `task_kind` (None: any); train and synthetic examples only."""
        cfg = self.config.replay
        n = min(cfg.max_examples, round(cfg.ratio * len(texts)))
        if n <= 0:
            return []
        return self.replay(cfg.policy, ReplayRequest(task_id, self.embed(texts), n, seed=seed,
                                                     task_kind=task_kind))

    def replay(self, policy: str, request: ReplayRequest) -> list[ReplayItem]:
        from synlearner.memory.replay import get_policy

        records = get_policy(policy)(self, request)
        infos: dict[str, TaskInfo | None] = {}
        out = []
        for rec in records:
            if rec.task_id not in infos:
                infos[rec.task_id] = self.task_info(rec.task_id)
            info = infos[rec.task_id]
            if info is not None:
                out.append(ReplayItem(rec, info))
        return out

    def negatives(self, texts: Sequence[str], k: int, task_kind: str = "generation",
                  splits: Sequence[str] = ("train", "self_train")) -> list[list[Hit]]:
        """For each text, wrong answers kept in the error memory: first those given to this
        very input (score 1.0; at most max(k, 1), newest first), then those given to its `k`
        nearest other inputs (score: the cosine similarity), of tasks of `task_kind`, from
        `splits` only (never evaluation)."""
        from synlearner.memory.negatives import negatives

        return negatives(self, texts, k, task_kind, splits)

    def successes(self, texts: Sequence[str], n: int, task_kind: str = "generation",
                  exclude_task: str | None = None) -> list[ReplayItem]:
        """Up to `n` answers the model itself got right on past tasks of `task_kind` (split
        `self_train`; committed tasks other than `exclude_task`): of the `4 n` whose inputs
        are nearest the centroid of `texts`, a farthest-point cover of their inputs."""
        from synlearner.memory.successes import successes

        return successes(self, texts, n, task_kind, exclude_task)

    def counts(self) -> dict[str, int]:
        rows = dict(self._db.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind").fetchall())
        tasks = self._db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        exp, err = int(rows.get("experience", 0)), int(rows.get("error", 0))
        return {"experience": exp, "error": err, "records": exp + err, "tasks": int(tasks),
                "indexed": int(self._index.ntotal)}

    def close(self) -> None:
        self._db.close()
