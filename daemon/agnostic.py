"""Answering without a task id: routing to a task's adapter, or the consolidated adapter.

With per-task adapters the daemon needs a way to answer when nobody says which task an
input belongs to. Two are built in:

- routing (`none`, the default): each input goes to the adapter that answers for the task
  whose input centroid in memory is nearest (cosine of base-model embeddings);
- consolidation (`ties`, `linear`): the adapters that answer for the tasks of a kind are
  merged into one adapter, `consolidated_key(kind)`, which answers for every task of it.

`route_task` is what `synlearner predict` uses to pick the label set when it is given text
only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from synlearner.daemon.state import State, TaskEntry
from synlearner.learner.base import Learner, consolidated_key
from synlearner.learner.config import LearnerConfig
from synlearner.memory.base import Memory, committed_id
from synlearner.stream.io import recover_dir
from synlearner.stream.schema import Task


def consolidated_dir(state: State, kind: str) -> Path:
    """The committed consolidated adapter of `kind`."""
    if kind in state.consolidated:
        return state.root / state.consolidated[kind]
    return state.adapter_dir(consolidated_key(kind))  # state dirs written before events


def merge_method(learner: LearnerConfig) -> str:
    """How a daemon with this learner config answers without a task id: its merge where it
    keeps per-task adapters, else "none" (one adapter answers with or without the id)."""
    return learner.consolidate if learner.adapters == "per-task" else "none"


def answering_adapter(state: State, entry: TaskEntry, method: str = "none") -> tuple[str, Path]:
    """The adapter (key, folder) that answers for `entry`'s task: the consolidated one where
    `method` merges and a merge is committed (answers without a task id), else the task's
    own answering adapter (a merge left by an earlier config is never used for routing)."""
    merged = consolidated_dir(state, entry.kind)
    if method != "none" and merged.exists():
        return consolidated_key(entry.kind), merged
    key = state.answer_key(entry.task_id)
    return key, state.root / (state.latest(key) or entry).adapter


class TaskAgnostic:
    """`key_of`: task id -> the adapter that answers for it; `known`: (task id, adapter) ->
    the task's eval accuracy with that adapter where it is already measured (the task-aware
    scores), so a task whose inputs are all routed to its own adapter is not scored again."""

    def __init__(self, method: str, memory: Memory, learners: Mapping[str, Learner],
                 state: State, key_of: Callable[[str], str],
                 known: Callable[[str, str], float | None] = lambda task_id, key: None) -> None:
        self.method = method
        self.key_of = key_of
        self.known = known
        self.memory = memory
        self.learners = learners
        self.state = state

    def consolidate(self, kind: str, keys: Sequence[str], event: int | None = None) -> str | None:
        """Merge the adapters `keys` into `consolidated_key(kind)`; with `event`, save it in
        that event's folder and return the path relative to the state dir (None: nothing
        merged)."""
        learner = self.learners[kind]
        sources = [k for k in dict.fromkeys(keys) if learner.has_adapter(k)]
        if self.method == "none" or not sources:
            return None
        learner.merge(sources, consolidated_key(kind), self.method)
        if event is None:
            return None
        path = self.state.adapter_dir(consolidated_key(kind), event)
        self.state.will_write([str(path.relative_to(self.state.root))])
        learner.save_adapter(consolidated_key(kind), path)
        return str(path.relative_to(self.state.root))

    def restore(self) -> None:
        """Load the committed consolidated adapters, or merge them again from the restored
        per-task adapters where none was saved."""
        for kind, learner in self.learners.items():
            path = consolidated_dir(self.state, kind)
            recover_dir(path)
            if self.method != "none" and path.is_dir():
                learner.load_adapter(consolidated_key(kind), path)
                continue
            ids = [e.task_id for e in self.state.entries if e.kind == kind]
            if ids:
                self.consolidate(kind, [self.key_of(t) for t in ids])

    def score(self, task: Task) -> float:
        """Eval accuracy on `task` without being told the task's adapter."""
        return self.score_all([task.task_id], lambda task_id: task)[task.task_id]

    def score_all(self, task_ids: Sequence[str], load: Callable[[str], Task],
                  beat: Callable[[str], None] = lambda task_id: None) -> dict[str, float]:
        """Eval accuracy on each task of `task_ids` (`load` reads one) without being told its
        adapter. The inputs routed to an adapter are scored adapter by adapter across all
        the tasks, so each adapter is made active (and read from disk, if it was unloaded)
        once, not once for every task with inputs routed to it; a task is read again for
        each adapter its inputs went to rather than all of them held at once. `beat(task
        id)` comes before each task is routed or scored (heartbeat and stop check)."""
        scores: dict[str, float] = {}
        groups: dict[str | None, list[tuple[str, tuple[int, ...]]]] = {}  # adapter -> inputs
        for task_id in task_ids:
            beat(task_id)
            task = load(task_id)
            learner = self.learners[task.kind]
            merged = consolidated_key(task.kind)
            if self.method != "none" and learner.has_adapter(merged):
                scores[task_id] = learner.evaluate(task, merged)
                continue
            scores[task_id] = 0.0
            if not task.eval:
                continue
            routes = self.memory.route([e.input for e in task.eval])
            key_of_route = {r: self._answering(r, learner) for r in set(routes)}  # once a task
            keys = [key_of_route[r] for r in routes]
            if len(set(keys)) == 1 and keys[0] is not None:  # every input went to one adapter
                measured = self.known(task_id, keys[0])
                if measured is not None:
                    scores[task_id] = measured
                    continue
            for key in dict.fromkeys(keys):
                rows = tuple(i for i, k in enumerate(keys) if k == key)
                groups.setdefault(key, []).append((task_id, rows))
        for key, parts in groups.items():
            for task_id, rows in parts:
                beat(task_id)
                task = load(task_id)
                subset = dataclasses.replace(task, eval=tuple(task.eval[i] for i in rows))
                accuracy = self.learners[task.kind].evaluate(subset, key)
                scores[task_id] += accuracy * len(rows) / len(task.eval)
        return scores

    def _answering(self, routed: str | None, learner: Learner) -> str | None:
        """The adapter that answers an input routed to task `routed` (None: the base model,
        where no task is near or its adapter is missing)."""
        key = self.key_of(committed_id(routed)) if routed is not None else None
        return key if key is not None and learner.has_adapter(key) else None


def route_task(memory: Memory, texts: Sequence[str]) -> list[str | None]:
    """The task each text most likely belongs to (nearest task centroid in memory)."""
    return memory.route(list(texts))
