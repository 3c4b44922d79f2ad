"""Answers from the committed adapters of a state directory, for `synlearner serve`.

One resident base model per task kind; a task's adapter is loaded once and switched to in
place (PEFT's `set_adapter`), never by reloading the model. The state is read again when
its database changes (a commit by the daemon beside it), at most every `reload_check_s`,
and a request is answered from one snapshot of it: it sees a newly committed adapter either
for all of its inputs or for none, and never a half-trained one (the daemon trains in
memory and commits an adapter by renaming its folder into place).

Predictions take turns on the models (`ModelQueue`): at most `daemon.api.max_queue` wait,
none longer than `queue_timeout_s`; the others are refused at once (`Busy`, a 503 with
Retry-After). What has been learned is read from the snapshot without waiting for a turn.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synlearner.daemon.agnostic import answering_adapter, merge_method
from synlearner.daemon.build import memory_embedder
from synlearner.daemon.config import Config
from synlearner.daemon.state import State, TaskEntry
from synlearner.learner.base import Learner
from synlearner.memory.base import committed_id
from synlearner.memory.profiles import TaskProfiles
from synlearner.stream.schema import Task

log = logging.getLogger("synlearner.daemon")
LABEL_CACHE = 1024  # tasks' label vectors kept (a few KB each)


class UnknownTask(LookupError):
    """The request names a task that has not been learned (404)."""


class Unavailable(RuntimeError):
    """What the request needs is gone from the state directory (503)."""


class NotServable(ValueError):
    """The request asks for something the task cannot do (e.g. refine a label) (400)."""


class Busy(RuntimeError):
    """The models are taken for longer than the request may wait (503 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, math.ceil(retry_after_s))  # whole seconds, as HTTP has it


@dataclass
class Turn:
    started: float

    def restart(self) -> None:
        """Time the turn from now (what came before, e.g. loading the models, is not a
        turn's usual length)."""
        self.started = time.monotonic()


class ModelQueue:
    """Turns on the resident models, one at a time. At most `max_waiting` requests wait for
    one, none longer than `timeout_s`; a request is refused at once when the queue is full
    or when the wait, estimated from the mean length of recent turns, would be longer."""

    def __init__(self, max_waiting: int, timeout_s: float) -> None:
        self.max_waiting, self.timeout_s = max_waiting, timeout_s
        self._models = threading.Lock()
        self._books = threading.Lock()  # guards the two below
        self.waiting = 0
        self.mean_turn_s = 0.0  # moving mean of the last turns' lengths

    def _wait_s(self) -> float:
        return (self.waiting + self._models.locked()) * self.mean_turn_s

    @contextmanager
    def turn(self) -> Iterator[Turn]:
        with self._books:
            wait_s = self._wait_s()
            if self._models.locked() and self.waiting >= self.max_waiting:
                raise Busy(f"{self.waiting} requests wait for the model "
                           f"(daemon.api.max_queue {self.max_waiting})", wait_s)
            if wait_s > self.timeout_s:
                raise Busy(f"the wait for the model would be about {wait_s:.0f} s, over "
                           f"daemon.api.queue_timeout_s ({self.timeout_s:g} s)", wait_s)
            self.waiting += 1
        try:
            got = self._models.acquire(timeout=self.timeout_s)
        finally:
            with self._books:
                self.waiting -= 1
        if not got:
            with self._books:
                wait_s = self._wait_s()
            raise Busy(f"waited daemon.api.queue_timeout_s ({self.timeout_s:g} s) for the "
                       "model", wait_s)
        turn = Turn(time.monotonic())
        try:
            yield turn
        finally:
            took = time.monotonic() - turn.started
            with self._books:
                self.mean_turn_s = took if not self.mean_turn_s else 0.8 * self.mean_turn_s + 0.2 * took
            self._models.release()


@dataclass(frozen=True)
class Answer:
    task_id: str
    adapter: str  # the adapter key that answered
    version: int  # the answering task's version
    prediction: str
    scores: dict[str, float] | None = None  # classification: each label's probability
    verifier_score: float | None = None  # refined generation: the best answer's score (0-5)
    rounds: int | None = None  # refined generation: answers generated


class Predictor:
    """`learners`: the resident models, or a function that builds them when first needed
    (the training daemon's API: a copy of its own, loaded by the first request)."""

    def __init__(self, cfg: Config,
                 learners: Mapping[str, Learner] | Callable[[], Mapping[str, Learner]]) -> None:
        self.cfg = cfg
        self.root = cfg.state_dir
        self._build = learners if callable(learners) else None
        self.learners: dict[str, Learner] = {} if callable(learners) else dict(learners)
        self.queue = ModelQueue(cfg.daemon.api.max_queue, cfg.daemon.api.queue_timeout_s)
        self._state_lock = threading.Lock()  # the snapshot and the task cache, never held long
        # (kind, adapter key) -> (weights file, its mtime) of the adapter loaded
        self._loaded: dict[tuple[str, str], tuple[Path, int]] = {}
        self._tasks: dict[tuple[str, str], Task] = {}  # (task id, content hash) -> task
        # (adapter loaded, task id, content hash) -> the label vectors under that adapter
        self._labels: dict[tuple[Any, str, str], Any] = {}
        self._stamp: tuple[int, ...] = ()
        self._checked = 0.0
        self.state = State.read(self.root)
        self.reloads = 0  # snapshots read after the first

    # -- the state snapshot --------------------------------------------------------------
    def _db_stamp(self) -> tuple[int, ...]:
        out: list[int] = []
        for name in ("state.sqlite3", "state.sqlite3-wal"):
            try:
                st = (self.root / name).stat()
                out += [st.st_mtime_ns, st.st_size]
            except FileNotFoundError:
                out += [0, 0]
        return tuple(out)

    def refresh(self, force: bool = False) -> State:
        """The latest committed state (read again if the database changed since)."""
        with self._state_lock:
            now = time.monotonic()
            if force or now - self._checked >= self.cfg.daemon.api.reload_check_s:
                self._checked = now
                stamp = self._db_stamp()
                if force or stamp != self._stamp:
                    if self._stamp:
                        self.reloads += 1
                    self.state, self._stamp = State.read(self.root), stamp
            return self.state

    def ready(self) -> bool:
        return (self.root / "state.sqlite3").exists()

    # -- what has been learned (from the snapshot: no turn on the models) ---------------
    def tasks(self) -> list[dict[str, Any]]:
        state = self.refresh()
        scores = state.latest_scores()
        return [_task_view(e, scores.get(e.column), state.answer_key(e.task_id))
                for e in (state.latest(t) for t in state.task_ids()) if e is not None]

    def task(self, task_id: str) -> dict[str, Any]:
        state = self.refresh()
        entry = state.latest(task_id)
        if entry is None:
            raise UnknownTask(f"task {task_id!r} has not been learned")
        view = _task_view(entry, state.latest_scores().get(entry.column),
                          state.answer_key(task_id))
        view["versions"] = [e.version for e in state.entries if e.task_id == task_id]
        view["labels"] = list(self._task(state, entry).labels)
        return view

    # -- answering -----------------------------------------------------------------------
    def predict(self, task_id: str | None, inputs: Sequence[str], refine: int = 0,
                threshold: float = 4.5) -> list[Answer]:
        """Raises `Busy` when it cannot have a turn on the models in time."""
        with self.queue.turn() as turn:
            if self._build is not None:  # the first request loads the models
                self.learners, self._build = dict(self._build()), None
                turn.restart()
            try:
                return self._predict(self.refresh(), task_id, inputs, refine, threshold)
            except FileNotFoundError:  # an adapter pruned after a newer commit: read again
                pass
            try:
                return self._predict(self.refresh(force=True), task_id, inputs, refine, threshold)
            except FileNotFoundError as exc:  # removed from the state dir by hand
                raise Unavailable(self._missing(exc)) from None

    def _missing(self, exc: FileNotFoundError) -> str:
        """What a client is told of a missing file: where it is in the state directory,
        never where that directory is (the log has the full path)."""
        log.warning("serving: a committed adapter is missing: %s", exc.filename)
        path, root = Path(str(exc.filename or "?")).absolute(), self.root.absolute()
        where = path.relative_to(root) if path.is_relative_to(root) else path.name
        return f"a committed adapter is missing from the state directory: {where}"

    def _predict(self, state: State, task_id: str | None, inputs: Sequence[str], refine: int,
                 threshold: float) -> list[Answer]:
        if not state.entries:
            raise UnknownTask("nothing has been learned yet")
        if task_id is not None:
            return self._answer(state, task_id, list(inputs), refine, threshold, routed=False)
        routes = self._route(inputs)
        out: list[Answer | None] = [None] * len(inputs)
        for routed in dict.fromkeys(routes):
            idx = [i for i, r in enumerate(routes) if r == routed]
            if routed is None or state.latest(routed) is None:
                raise UnknownTask("no learned task is near these inputs")
            for i, answer in zip(idx, self._answer(state, routed, [inputs[i] for i in idx],
                                                   refine, threshold, routed=True), strict=True):
                out[i] = answer
        return [a for a in out if a is not None]

    def _route(self, inputs: Sequence[str]) -> list[str | None]:
        """The nearest task centroid per input (the memory's task profiles, read-only)."""
        path = self.root / "memory" / "memory.sqlite3"
        if not path.exists():
            return [None] * len(inputs)
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            profiles = TaskProfiles(db, _read_only, self.cfg.memory.similarity.model_dump())
            embedder = memory_embedder(self.cfg, self.learners)
            # a task being learned again routes as its committed version
            return [committed_id(r) if r else None for r in profiles.route(embedder.embed(list(inputs)))]
        finally:
            db.close()

    def _answer(self, state: State, task_id: str, inputs: list[str], refine: int,
                threshold: float, routed: bool) -> list[Answer]:
        entry = state.latest(task_id)
        if entry is None:
            raise UnknownTask(f"task {task_id!r} has not been learned")
        task = self._task(state, entry)
        learner = self.learners.get(task.kind)
        if learner is None:
            raise NotServable(f"task {task_id!r} is of kind {task.kind!r}, which this server "
                              "has no model for")
        key, path = self._adapter(state, entry, routed)
        self._load(learner, task.kind, key, path)
        if refine:
            return self._refined(state, task, learner, key, entry, inputs, refine, threshold)
        if task.kind == "classification":
            labels = self._label_vectors(learner, task, key)
            scores = learner.label_scores(task, inputs, key, labels)  # type: ignore[attr-defined]
            return [Answer(task_id, key, entry.version, max(s, key=s.__getitem__),
                           {k: round(v, 4) for k, v in s.items()}) for s in scores]
        return [Answer(task_id, key, entry.version, p) for p in learner.predict(task, inputs, key)]

    def _refined(self, state: State, task: Task, learner: Learner, key: str, entry: TaskEntry,
                 inputs: list[str], rounds: int, threshold: float) -> list[Answer]:
        from synlearner.learner.rewards import parse, verifier_tasks

        if task.kind == "synthesis":  # scored by its judge, whose adapter the classifier loads
            judge_key = learner.judge_of(task).adapter  # type: ignore[attr-defined]
            judged = state.latest(judge_key) if judge_key else None
            if judged is not None:
                self._load(self.learners["classification"], "classification", judge_key,
                           state.root / judged.adapter)
            refined = learner.refine(task, inputs, key, rounds, threshold)  # type: ignore[attr-defined]
            return [Answer(task.task_id, key, entry.version, r.answer,
                           verifier_score=round(r.score, 3), rounds=r.rounds) for r in refined]
        named = next(iter(verifier_tasks(parse(task.reward))), None) if task.reward else None
        judge = state.latest(named) if named else None
        if task.kind != "generation" or judge is None or judge.kind != "verification":
            raise NotServable("refine needs a synthesis task, or a generation task whose reward "
                              "names a learned verification task")
        self._load(learner, task.kind, judge.task_id, state.root / judge.adapter)
        refined = learner.refine(task, inputs, key, rounds, threshold,  # type: ignore[attr-defined]
                                 judge.task_id)
        return [Answer(task.task_id, key, entry.version, r.answer, verifier_score=round(r.score, 3),
                       rounds=r.rounds) for r in refined]

    def _adapter(self, state: State, entry: TaskEntry, routed: bool) -> tuple[str, Path]:
        return answering_adapter(state, entry, merge_method(self.cfg.learner) if routed else "none")

    def _load(self, learner: Learner, kind: str, key: str, path: Path) -> None:
        """Load `key`'s adapter unless the one loaded is still the folder's (a new commit
        names a new folder; a merge swaps a new folder in under the same name)."""
        weights = path / "adapter_model.safetensors"
        stamp = (weights, weights.stat().st_mtime_ns)
        if self._loaded.get((kind, key)) != stamp or not learner.has_adapter(key):
            learner.load_adapter(key, path)
            self._loaded[(kind, key)] = stamp

    def _label_vectors(self, learner: Learner, task: Task, key: str) -> Any:
        """The task's label embeddings under the adapter loaded for `key`, encoded once per
        load of that adapter (most of a small request's work otherwise)."""
        cache_key = (self._loaded[(task.kind, key)], task.task_id, task.content_hash)
        vectors = self._labels.get(cache_key)
        if vectors is None:
            vectors = learner.label_vectors(task, key)  # type: ignore[attr-defined]
            if len(self._labels) >= LABEL_CACHE:
                self._labels.pop(next(iter(self._labels)))
            self._labels[cache_key] = vectors
        return vectors

    def _task(self, state: State, entry: TaskEntry) -> Task:
        with self._state_lock:
            cached = self._tasks.get((entry.task_id, entry.content_hash))
            if cached is None:
                cached = self._tasks[(entry.task_id, entry.content_hash)] = state.load_task(entry.task_id)
            return cached


def _read_only() -> Any:
    raise RuntimeError("the serving replica never writes the memory")


def _task_view(entry: TaskEntry, score: float | None, answer_key: str) -> dict[str, Any]:
    return {"task_id": entry.task_id, "kind": entry.kind, "version": entry.version,
            "learned_at": entry.learned_at, "adapter": answer_key, "accuracy": score,
            "zero_shot": entry.zero_shot, "final": entry.final, "init_from": entry.init_from}
