"""Wire schema: the strict edge model (`TaskMessage`) and the frozen inner `Task`.

Every message from outside meets `parse_task` first. It never raises anything but
`InvalidTask`, whose `reason` names the field and the limit that was broken, so the
consume loop can dead-letter the message and go on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_V1 = "synlearner.task/v1"
RESULT_SCHEMA_V1 = "synlearner.result/v1"
TASK_ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"  # never ".", ".." or hidden
_TASK_ID_RE = re.compile(TASK_ID_PATTERN)


class InvalidTask(ValueError):
    """A message that cannot become a `Task`; `reason` says which field and which limit."""

    def __init__(self, reason: str, task_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id


@dataclass(frozen=True)
class Limits:
    """Size limits applied at the edge (set from the `stream.limits` config section)."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_train_examples: int = 10_000
    max_eval_examples: int = 5_000
    max_field_chars: int = 4_000
    max_labels: int = 64
    allowed_data_roots: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Example:
    input: str
    output: str


@dataclass(frozen=True)
class Task:
    """A validated task. `content_hash` identifies this version of `task_id`."""

    task_id: str
    kind: Literal["classification", "generation"]
    instruction: str
    labels: tuple[str, ...]
    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_hash: str = ""

    def to_message(self) -> dict[str, Any]:
        """The task as a self-contained v1 message (data inlined)."""
        return {
            "schema": SCHEMA_V1,
            "task_id": self.task_id,
            "kind": self.kind,
            "instruction": self.instruction,
            "labels": list(self.labels),
            "train": [{"input": e.input, "output": e.output} for e in self.train],
            "eval": [{"input": e.input, "output": e.output} for e in self.eval],
            "metadata": dict(self.metadata),
        }


class ExampleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input: str = Field(min_length=1)
    output: str = Field(min_length=1)


class DataRef(BaseModel):
    """Examples kept in a JSONL or Parquet file under one of the allowed roots."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    train: str | None = None
    eval: str | None = None


class TaskMessage(BaseModel):
    """The v1 task message as producers send it (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["synlearner.task/v1"] = Field(alias="schema")
    task_id: str = Field(pattern=TASK_ID_PATTERN)
    kind: Literal["classification", "generation"]
    instruction: str = Field(default="", max_length=4_000)
    labels: list[str] = Field(default_factory=list)
    train: list[ExampleModel] = Field(default_factory=list)
    eval: list[ExampleModel] = Field(default_factory=list)
    data: DataRef | None = None
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _labels_fit_kind(self) -> TaskMessage:
        if self.kind == "classification":
            if len(self.labels) < 2:
                raise ValueError("labels: a classification task needs at least 2 labels")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("labels: labels must be unique")
        elif self.labels:
            raise ValueError("labels: only classification tasks take labels")
        return self


def _fail(reason: str, task_id: str | None) -> InvalidTask:
    return InvalidTask(reason, task_id)


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "message"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _guess_task_id(obj: Any) -> str | None:
    if isinstance(obj, dict):
        tid = obj.get("task_id")
        if isinstance(tid, str) and _TASK_ID_RE.match(tid):
            return tid
    return None


def parse_task(raw: bytes, limits: Limits) -> Task:
    """Validate raw message bytes into a `Task`, or raise `InvalidTask`."""
    if len(raw) > limits.max_message_bytes:
        raise _fail(
            f"message: {len(raw)} bytes exceeds max_message_bytes={limits.max_message_bytes}",
            None,
        )
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"message: not valid JSON ({exc})", None) from None
    task_id = _guess_task_id(obj)
    if not isinstance(obj, dict):
        raise _fail("message: expected a JSON object", None)
    try:
        msg = TaskMessage.model_validate(obj)
    except ValidationError as exc:
        raise _fail(_format_validation_error(exc), task_id) from None
    return _to_task(msg, limits)


def _to_task(msg: TaskMessage, limits: Limits) -> Task:
    from synlearner.stream.data import load_examples  # local: keeps pyarrow off the fast path

    tid = msg.task_id
    train = [Example(e.input, e.output) for e in msg.train]
    evals = [Example(e.input, e.output) for e in msg.eval]
    if msg.data is not None:
        if msg.data.train:
            train += load_examples(msg.data.train, "data.train", limits)
        if msg.data.eval:
            evals += load_examples(msg.data.eval, "data.eval", limits)
    _check_limits(msg, train, evals, limits)
    task = Task(
        task_id=tid,
        kind=msg.kind,
        instruction=msg.instruction,
        labels=tuple(msg.labels),
        train=tuple(train),
        eval=tuple(evals),
        metadata=dict(msg.metadata),
    )
    digest = hashlib.sha256(json.dumps(task.to_message(), sort_keys=True).encode()).hexdigest()
    return Task(**{**task.__dict__, "content_hash": digest[:16]})


def _check_limits(
    msg: TaskMessage, train: list[Example], evals: list[Example], limits: Limits
) -> None:
    tid = msg.task_id
    if not train:
        raise _fail("train: at least one training example is required", tid)
    if not evals:
        raise _fail("eval: at least one evaluation example is required", tid)
    if len(train) > limits.max_train_examples:
        raise _fail(
            f"train: {len(train)} examples exceeds max_train_examples={limits.max_train_examples}",
            tid,
        )
    if len(evals) > limits.max_eval_examples:
        raise _fail(
            f"eval: {len(evals)} examples exceeds max_eval_examples={limits.max_eval_examples}",
            tid,
        )
    if len(msg.labels) > limits.max_labels:
        raise _fail(f"labels: {len(msg.labels)} labels exceeds max_labels={limits.max_labels}", tid)
    cap = limits.max_field_chars
    for name, text in [("instruction", msg.instruction)] + [
        (f"labels[{i}]", lab) for i, lab in enumerate(msg.labels)
    ]:
        if len(text) > cap:
            raise _fail(f"{name}: {len(text)} chars exceeds max_field_chars={cap}", tid)
    label_set = set(msg.labels)
    for split, examples in (("train", train), ("eval", evals)):
        for i, ex in enumerate(examples):
            for fname in ("input", "output"):
                value = getattr(ex, fname)
                if len(value) > cap:
                    raise _fail(
                        f"{split}[{i}].{fname}: {len(value)} chars exceeds max_field_chars={cap}",
                        tid,
                    )
            if msg.kind == "classification" and ex.output not in label_set:
                raise _fail(f"{split}[{i}].output: {ex.output!r} is not one of labels", tid)


@dataclass(frozen=True)
class TaskResult:
    """What the daemon publishes for every task it consumed."""

    task_id: str
    status: Literal["learned", "duplicate", "failed", "invalid"]
    content_hash: str = ""
    version: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    adapter_path: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> bytes:
        body = {"schema": RESULT_SCHEMA_V1, **self.__dict__}
        body["metrics"] = dict(self.metrics)
        body["timings"] = dict(self.timings)
        return json.dumps(body, sort_keys=True).encode()
