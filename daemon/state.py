"""The daemon's durable state: learned tasks, their definitions, the accuracy matrix.

`state.json` is rewritten atomically (temp file, fsync, rename) once a task's adapter and
memory writes are durable: that write is the commit point of a task. Task definitions are
kept under `tasks/<task_id>.json` so every seen task can be evaluated again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synlearner.daemon.transfer import TransferMetrics, transfer_metrics
from synlearner.stream.schema import Limits, Task, parse_task
from synlearner.stream.spool import write_atomic

STATE_VERSION = 1


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


@dataclass
class State:
    root: Path
    entries: list[TaskEntry] = field(default_factory=list)  # one per learning event, in order
    matrix: list[list[float | None]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.root / "state.json"

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def load(cls, root: Path) -> State:
        root.mkdir(parents=True, exist_ok=True)
        (root / "tasks").mkdir(exist_ok=True)
        (root / "adapters").mkdir(exist_ok=True)
        state = cls(root=root)
        if state.path.exists():
            data = json.loads(state.path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"{state.path}: unsupported state version {data.get('version')}")
            state.entries = [TaskEntry(**e) for e in data["entries"]]
            state.matrix = data["matrix"]
        return state

    def save(self) -> None:
        body = {"version": STATE_VERSION, "saved_at": time.time(),
                "entries": [asdict(e) for e in self.entries], "matrix": self.matrix}
        write_atomic(self.path, json.dumps(body, indent=1).encode())

    def save_task(self, task: Task) -> None:
        write_atomic(self.task_path(task.task_id), json.dumps(task.to_message()).encode())

    def task_path(self, task_id: str) -> Path:
        return self.root / "tasks" / f"{task_id}.json"

    def adapter_dir(self, task_id: str) -> Path:
        return self.root / "adapters" / task_id

    def load_task(self, task_id: str) -> Task:
        limits = Limits(max_message_bytes=2**40, max_train_examples=2**31,
                        max_eval_examples=2**31, max_field_chars=2**31, max_labels=2**31)
        return parse_task(self.task_path(task_id).read_bytes(), limits)

    # -- queries -------------------------------------------------------------------------
    def latest(self, task_id: str) -> TaskEntry | None:
        for entry in reversed(self.entries):
            if entry.task_id == task_id:
                return entry
        return None

    def is_learned(self, task_id: str, content_hash: str) -> bool:
        entry = self.latest(task_id)
        return entry is not None and entry.content_hash == content_hash

    def task_ids(self) -> list[str]:
        """Distinct learned task ids, in first-learned order."""
        return list(dict.fromkeys(e.task_id for e in self.entries))

    def metrics(self) -> TransferMetrics:
        return transfer_metrics(self.matrix, [e.zero_shot for e in self.entries])

    def latest_scores(self) -> dict[str, float]:
        if not self.matrix:
            return {}
        return {e.column: v for e, v in zip(self.entries, self.matrix[-1], strict=True) if v is not None}

    # -- the commit point ----------------------------------------------------------------
    def record(self, entry: TaskEntry, row: dict[str, float]) -> None:
        """Append a learning event: its matrix row (scores by task id) and R[i-1][i]."""
        if self.matrix:
            self.matrix[-1].append(entry.initial)  # R[i-1][i]: before training on the new task
        self.entries.append(entry)
        new_row: list[float | None] = [row[e.task_id] for e in self.entries]
        self.matrix.append(new_row)
        self.save()

    def summary(self) -> dict[str, Any]:
        return {"tasks": len(self.entries), **self.metrics().as_dict()}
