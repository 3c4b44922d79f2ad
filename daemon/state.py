"""The daemon's durable state: learned tasks, their definitions, the accuracy matrix.

`state.json` is rewritten atomically (temp file, fsync, rename) once a task's adapter and
memory writes are durable: that write is the commit point of a task. Task definitions are
kept under `tasks/<task_id>.json` so every seen task can be evaluated again.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synlearner.daemon.transfer import TransferMetrics, sparse_transfer_metrics, transfer_metrics
from synlearner.stream.io import write_atomic
from synlearner.stream.schema import Limits, Task, parse_task

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
    adapter_key: str = ""  # the learner's adapter key: the task id, or a shared adapter's
    probe: dict[str, Any] | None = None  # nearest-vs-fresh start check (`InitProbe` fields)
    curve: list[list[float]] = field(default_factory=list)  # [step, eval accuracy] pairs
    task_file: str = ""  # the task's definition, relative to the state dir ("": tasks/<id>.json)


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
            state.agnostic = data.get("agnostic", [])
            state.answers = data.get("answers", {})
            state.consolidated = data.get("consolidated", {})
        if len(state.agnostic) != len(state.matrix):  # not kept before: nothing measured
            state.agnostic = [[None] * len(row) for row in state.matrix]
        state.prune()
        return state

    def save(self) -> None:
        body = {"version": STATE_VERSION, "saved_at": time.time(),
                "entries": [asdict(e) for e in self.entries], "matrix": self.matrix,
                "agnostic": self.agnostic, "answers": self.answers,
                "consolidated": self.consolidated}
        write_atomic(self.path, json.dumps(body, indent=1).encode())

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

    def save_task(self, task: Task, version: int) -> str:
        """Write the task's definition for `version`; returns its path relative to the root."""
        path = self.root / "tasks" / f"{task.task_id}.v{version}.json"
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

    def prune(self) -> None:
        """Remove event folders and task files that no committed entry refers to any more."""
        keep = {e.adapter for e in self._latest_per_key()} | set(self.consolidated.values())
        keep |= {e.task_file for e in self._latest_per_key(by_task=True) if e.task_file}
        for key_dir in (self.root / "adapters").iterdir():
            for event_dir in key_dir.iterdir() if key_dir.is_dir() else []:
                rel = str(event_dir.relative_to(self.root))
                if event_dir.is_dir() and event_dir.name.isdigit() and rel not in keep:
                    shutil.rmtree(event_dir, ignore_errors=True)
        for path in (self.root / "tasks").glob("*.v*.json"):
            if str(path.relative_to(self.root)) not in keep:
                path.unlink(missing_ok=True)

    def _latest_per_key(self, by_task: bool = False) -> list[TaskEntry]:
        latest: dict[str, TaskEntry] = {}
        for entry in self.entries:
            latest[entry.task_id if by_task else (entry.adapter_key or entry.task_id)] = entry
        return list(latest.values())

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
    def record(self, entry: TaskEntry, row: dict[str, float],
               agnostic: tuple[dict[str, float], float | None] | None = None,
               answers: dict[str, str] | None = None,
               consolidated: dict[str, str] | None = None) -> None:
        """Append a learning event: its matrix row (scores by task id) and R[i-1][i].

        `agnostic` is the task-agnostic row and that setting's score on the new task before
        training on it (None: not scored this event, either); `answers` are the tasks now
        answered by another adapter;
        `consolidated` the consolidated adapters this event wrote, by task kind.
        """
        self.consolidated.update(consolidated or {})
        # a new version answers with its own adapter, and stops answering for others
        self.answers = {t: k for t, k in self.answers.items()
                        if t != entry.task_id and k != entry.task_id}
        self.answers.update(answers or {})
        if self.matrix:
            self.matrix[-1].append(entry.initial)  # R[i-1][i]: before training on the new task
            self.agnostic[-1].append(agnostic[1] if agnostic else None)
        self.entries.append(entry)
        self.matrix.append([row[e.task_id] for e in self.entries])
        self.agnostic.append([agnostic[0].get(e.task_id) if agnostic else None
                              for e in self.entries])
        self.save()
        self.prune()

    def record_agnostic(self, row: dict[str, float], consolidated: dict[str, str]) -> None:
        """Score the latest event's task-agnostic row later (the stream was idle), with the
        consolidated adapters merged for it."""
        self.consolidated.update(consolidated)
        self.agnostic[-1] = [row.get(e.task_id) for e in self.entries]
        self.save()
        self.prune()

    def record_joint(self, entries: list[TaskEntry], row: dict[str, float]) -> None:
        """Record tasks learned together in one event (the multitask bound).

        Every row of the matrix is the one row of final scores: there is no "before" for a
        task, so BWT and forgetting come out 0 and FWT compares the joint result with
        zero-shot; they do not mean transfer here.
        """
        self.entries += entries
        self.matrix = [[row[e.task_id] for e in self.entries] for _ in self.entries]
        self.agnostic = [list(r) for r in self.matrix]
        self.save()
        self.prune()

    def summary(self) -> dict[str, Any]:
        return {"tasks": len(self.entries), **self.metrics().as_dict()}
