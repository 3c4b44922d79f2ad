"""Wire schema: the strict edge model (`TaskMessage`) and the frozen inner `Task`.

`parse_task` turns message bytes into a `Task` or raises `InvalidTask`, whose `reason`
names the field and the limit that was broken. The consume loop calls it through
`stream.boundary.decode`, which turns any other failure into a reason as well.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from synlearner.stream.errors import InvalidTask
from synlearner.stream.limits import Limits
from synlearner.stream.result import RESULT_SCHEMA_V1, TaskResult
from synlearner.stream.safejson import loads_bounded

__all__ = ["RESULT_SCHEMA_V1", "Limits", "TaskResult"]  # their modules; importable from here

SCHEMA_V1 = "synlearner.task/v1"
TASK_ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"  # never ".", ".." or hidden
_TASK_ID_RE = re.compile(TASK_ID_PATTERN)
TaskKind = Literal["classification", "generation", "preference", "verification", "synthesis"]
LABELLED = ("classification", "synthesis")  # kinds whose outputs are one of the task's labels
MAX_SCORE = 5  # a verification example's score: 0 (wrong) to 5 (fully right)


@dataclass(frozen=True)
class Example:
    """One example. `output` is the label (classification; synthesis, whose `input` is a
    text of that label), the reference answer
    (generation), the chosen answer (preference) or the answer judged (verification);
    `rejected` is a preference example's rejected answer, `score` a verification example's
    0-5 judgement of `output` as an answer to `input`."""

    input: str
    output: str
    rejected: str = ""
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input, "output": self.output}
        if self.rejected:
            out["rejected"] = self.rejected
        if self.score is not None:
            out["score"] = self.score
        return out


@dataclass(frozen=True)
class Task:
    """A validated task. `content_hash` identifies this version of `task_id`."""

    task_id: str
    kind: TaskKind
    instruction: str
    labels: tuple[str, ...]
    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_hash: str = ""
    truncated: Mapping[str, int] = field(default_factory=dict)  # what `on_oversize` cut, by what
    # generation only: the reward declaration (JSON, read by the learner)
    reward: Any = None
    methods: tuple[str, ...] = ()  # the learning methods it names (empty: its kind's defaults)
    synthesis: Mapping[str, Any] | None = None  # synthesis only: its `SynthesisSpec`, dumped
    # classification only: its request for synthetic data, {"count": N, "from": id | "nearest"}
    synthesize: Mapping[str, Any] | None = None

    def to_message(self) -> dict[str, Any]:
        """The task as a self-contained v1 message (data inlined). `reward` and `methods`
        appear only when set, so tasks without them keep the content hash they had."""
        out = {
            "schema": SCHEMA_V1,
            "task_id": self.task_id,
            "kind": self.kind,
            "instruction": self.instruction,
            "labels": list(self.labels),
            "train": [e.to_json() for e in self.train],
            "eval": [e.to_json() for e in self.eval],
            "metadata": dict(self.metadata),
        }
        if self.reward is not None:
            out["reward"] = self.reward
        if self.methods:
            out["methods"] = list(self.methods)
        if self.synthesis is not None:
            out["synthesis"] = dict(self.synthesis)
        if self.synthesize is not None:
            out["synthesize"] = dict(self.synthesize)
        return out


class ExampleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input: str = Field(min_length=1)
    output: str = Field(min_length=1)
    rejected: str | None = Field(None, min_length=1)  # preference tasks only
    score: float | None = Field(None, ge=0, le=MAX_SCORE, allow_inf_nan=False, strict=True)  # verification


class SynthesisSpec(BaseModel):
    """What a synthesis task asks for (`learner.synth_learner` learns it): texts of its
    labels, each label described in `descriptions`, written with attribute values drawn
    from `attributes` (e.g. {"length": ["short", "long"], "tone": ["calm", "angry"]}) and
    `shots` few-shot examples of the label; `count` requests in the reward phase's plan;
    `judge` the classification task (same labels) whose adapter judges a text's label
    (none: the base encoder, zero-shot)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    descriptions: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, Annotated[list[Annotated[str, Field(min_length=1)]],
                                    Field(min_length=1, max_length=32)]] = Field(
        default_factory=dict, max_length=8)
    count: int = Field(32, ge=1, le=4096, strict=True)
    shots: int = Field(2, ge=0, le=8, strict=True)
    judge: str | None = Field(None, pattern=TASK_ID_PATTERN)


class SynthesizeSpec(BaseModel):
    """A classification task's request for synthetic training data (the data flywheel):
    `count` texts written by the adapter of the synthesis task `from` (same labels), or of
    the nearest past synthesis task with its labels (`nearest`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    count: int = Field(ge=1, le=4096, strict=True)
    source: str = Field("nearest", alias="from", pattern=TASK_ID_PATTERN)


class DataRef(BaseModel):
    """Examples kept in a JSONL or Parquet file under one of the allowed roots."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    train: str | None = None
    eval: str | None = None


METHOD_NAME = r"^[a-z][a-z0-9_]{0,39}$"  # a learning method's registry name
MethodNames = list[Annotated[str, StringConstraints(pattern=METHOD_NAME)]]


class TaskMessage(BaseModel):
    """The v1 task message as producers send it (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["synlearner.task/v1"] = Field(alias="schema")
    task_id: str = Field(pattern=TASK_ID_PATTERN)
    kind: TaskKind
    instruction: str = ""
    labels: list[str] = Field(default_factory=list)
    train: list[ExampleModel] = Field(default_factory=list)
    eval: list[ExampleModel] = Field(default_factory=list)
    data: DataRef | None = None
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)
    # generation only; the learner checks the declaration (names, weights, parameters)
    reward: str | list[Any] | dict[str, Any] | None = None
    # the learning methods to run, by registry name, in order (the daemon checks each against
    # its registry and the task's kind when it accepts the task); absent: the kind's defaults
    methods: MethodNames | None = Field(None, min_length=1, max_length=8)
    phases: MethodNames | None = Field(None, min_length=1, max_length=8)  # deprecated: `methods`
    synthesis: SynthesisSpec | None = None  # synthesis only (absent: the defaults)
    synthesize: SynthesizeSpec | None = None  # classification only

    @model_validator(mode="after")
    def _labels_fit_kind(self) -> TaskMessage:
        if self.kind in LABELLED:
            if len(self.labels) < 2:
                raise ValueError(f"labels: a {self.kind} task needs at least 2 labels")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("labels: labels must be unique")
        elif self.labels:
            raise ValueError("labels: only classification and synthesis tasks take labels")
        if self.kind != "generation" and self.reward is not None:
            raise ValueError("reward: only generation tasks take reward")
        if self.kind != "synthesis" and self.synthesis is not None:
            raise ValueError("synthesis: only synthesis tasks take synthesis")
        if self.kind != "classification" and self.synthesize is not None:
            raise ValueError("synthesize: only classification tasks take synthesize")
        if self.methods is not None and self.phases is not None:
            raise ValueError("phases: the old name of methods; give methods only")
        named = self.methods if self.methods is not None else self.phases
        if named is not None and len(set(named)) != len(named):
            raise ValueError("methods: a method may appear once")
        if self.synthesis is not None:
            unknown = sorted(set(self.synthesis.descriptions) - set(self.labels))
            if unknown:
                raise ValueError(f"synthesis.descriptions: {_short(unknown[0])} is not one of labels")
        return self


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"])
        if not loc and e["type"] == "value_error":  # a model check: its message names the field
            parts.append(str(e["ctx"]["error"]))
        else:
            parts.append(f"{loc or 'message'}: {e['msg']}")
    return "; ".join(parts)


def _guess_task_id(obj: Any) -> str | None:
    if isinstance(obj, dict):
        tid = obj.get("task_id")
        if isinstance(tid, str) and _TASK_ID_RE.match(tid):
            return tid
    return None


def parse_task(raw: bytes, limits: Limits) -> Task:
    """Validate raw message bytes into a `Task`, or raise `InvalidTask`.

    Oversized content is cut or rejected as `limits.on_oversize` says; `Task.truncated`
    counts what was cut. Callers that must never raise use `stream.boundary.decode`.
    """
    if len(raw) > limits.max_message_bytes:
        raise InvalidTask(
            f"message: {len(raw)} bytes exceeds max_message_bytes={limits.max_message_bytes}",
            code="limit")
    obj = loads_bounded(raw, "message", limits.max_json_depth, limits.max_number_chars)
    task_id = _guess_task_id(obj)
    if not isinstance(obj, dict):
        raise InvalidTask("message: expected a JSON object", code="not_json")
    try:
        msg = TaskMessage.model_validate(obj)
    except ValidationError as exc:
        raise InvalidTask(_format_validation_error(exc), task_id) from None
    return _to_task(msg, limits)


def _to_task(msg: TaskMessage, limits: Limits) -> Task:
    from synlearner.stream.data import load_examples  # local: keeps pyarrow off the fast path

    train = [Example(e.input, e.output, e.rejected or "", e.score) for e in msg.train]
    evals = [Example(e.input, e.output, e.rejected or "", e.score) for e in msg.eval]
    if msg.data is not None:
        if msg.data.train:
            train += load_examples(msg.data.train, "data.train", limits)
        if msg.data.eval:
            evals += load_examples(msg.data.eval, "data.eval", limits)
    cut: dict[str, int] = {}
    _check_structure(msg, train, evals, limits)
    train = _fit_split(msg, "train", train, limits.max_train_examples, limits, cut)
    evals = _fit_split(msg, "eval", evals, limits.max_eval_examples, limits, cut)
    instruction = _fit_instruction(msg, limits, cut)
    task = Task(
        task_id=msg.task_id,
        kind=msg.kind,
        instruction=instruction,
        labels=tuple(msg.labels),
        train=tuple(_fit_fields(msg.task_id, "train", train, limits, cut)),
        eval=tuple(_fit_fields(msg.task_id, "eval", evals, limits, cut)),
        metadata=dict(msg.metadata),
        truncated=cut,
        reward=msg.reward,
        methods=tuple(msg.methods or msg.phases or ()),
        synthesis=((msg.synthesis or SynthesisSpec()).model_dump()
                   if msg.kind == "synthesis" else None),
        synthesize=msg.synthesize.model_dump(by_alias=True) if msg.synthesize else None,
    )
    digest = hashlib.sha256(json.dumps(task.to_message(), sort_keys=True).encode()).hexdigest()
    return dataclasses.replace(task, content_hash=digest[:16])


def _check_structure(msg: TaskMessage, train: list[Example], evals: list[Example],
                     limits: Limits) -> None:
    """What no oversize policy can repair."""
    tid = msg.task_id
    if not train:
        raise InvalidTask("train: at least one training example is required", tid)
    if not evals:
        raise InvalidTask("eval: at least one evaluation example is required", tid)
    if len(msg.labels) > limits.max_labels:
        raise InvalidTask(f"labels: {len(msg.labels)} labels exceeds max_labels={limits.max_labels}",
                          tid, code="limit")
    cap = limits.max_field_chars
    for i, lab in enumerate(msg.labels):
        if len(lab) > cap:
            raise InvalidTask(f"labels[{i}]: {len(lab)} chars exceeds max_field_chars={cap}", tid,
                              code="limit")
    spec = msg.synthesis
    texts = ([(f"synthesis.descriptions.{k}", v) for k, v in spec.descriptions.items()]
             + [(f"synthesis.attributes.{k}[{i}]", v) for k, vs in spec.attributes.items()
                for i, v in enumerate(vs)] + [(f"synthesis.attributes.{k}", k)
                                              for k in spec.attributes]) if spec else []
    for where, text in texts:
        if len(text) > cap:
            raise InvalidTask(f"{where}: {len(text)} chars exceeds max_field_chars={cap}", tid,
                              code="limit")
    label_set = set(msg.labels)
    for split, examples in (("train", train), ("eval", evals)):
        for i, ex in enumerate(examples):
            if msg.kind in LABELLED and ex.output not in label_set:
                raise InvalidTask(f"{split}[{i}].output: {_short(ex.output)} is not one of labels",
                                  tid)
            if (msg.kind == "preference") != bool(ex.rejected):
                raise InvalidTask(f"{split}[{i}].rejected: " + (
                    "a preference example needs the rejected answer" if msg.kind == "preference"
                    else "only preference tasks take rejected answers"), tid)
            if msg.kind == "preference" and ex.rejected == ex.output:
                raise InvalidTask(f"{split}[{i}].rejected: equals the chosen output", tid)
            if (msg.kind == "verification") != (ex.score is not None):
                raise InvalidTask(f"{split}[{i}].score: " + (
                    f"a verification example needs a score from 0 to {MAX_SCORE}"
                    if msg.kind == "verification" else "only verification tasks take scores"), tid)


def _fit_instruction(msg: TaskMessage, limits: Limits, cut: dict[str, int]) -> str:
    tid, cap = msg.task_id, limits.max_field_chars
    if len(msg.instruction) <= cap:
        return msg.instruction
    _oversize(limits, tid, f"instruction: {len(msg.instruction)} chars exceeds max_field_chars={cap}")
    cut["instruction"] = 1
    return msg.instruction[:cap]


def _oversize(limits: Limits, task_id: str, reason: str) -> None:
    if limits.on_oversize == "reject":
        raise InvalidTask(reason, task_id, code="limit")


def _fit_split(msg: TaskMessage, split: str, examples: list[Example], cap: int, limits: Limits,
               cut: dict[str, int]) -> list[Example]:
    """At most `cap` examples: a seeded, label-stratified sample in the original order."""
    if len(examples) <= cap:
        return examples
    _oversize(limits, msg.task_id,
              f"{split}: {len(examples)} examples exceeds max_{split}_examples={cap}")
    rng = random.Random(f"{limits.sample_seed}:{msg.task_id}:{split}")
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.output if msg.kind in LABELLED else "", []).append(i)
    # largest remainder: each label keeps its share of `cap`, every label at least one
    quotas = {k: cap * len(v) / len(examples) for k, v in groups.items()}
    take = {k: max(1, int(q)) for k, q in quotas.items()}
    by_remainder = sorted(groups, key=lambda k: (-(quotas[k] - int(quotas[k])), k))
    while sum(take.values()) < cap:
        for k in by_remainder:
            if sum(take.values()) < cap and take[k] < len(groups[k]):
                take[k] += 1
    while sum(take.values()) > cap:  # more labels than `cap`: drop from the largest
        biggest = max(take, key=lambda k: (take[k], k))
        take[biggest] -= 1
    keep = sorted(i for k, idx in groups.items() for i in rng.sample(idx, take[k]))
    cut[f"{split}_examples"] = len(examples) - len(keep)
    return [examples[i] for i in keep]


def _fit_fields(task_id: str, split: str, examples: list[Example], limits: Limits,
                cut: dict[str, int]) -> list[Example]:
    cap = limits.max_field_chars
    out = []
    for i, ex in enumerate(examples):
        if max(len(ex.input), len(ex.output), len(ex.rejected)) > cap:
            for name, value in (("input", ex.input), ("output", ex.output),
                                ("rejected", ex.rejected)):
                if len(value) > cap:
                    _oversize(limits, task_id,
                              f"{split}[{i}].{name}: {len(value)} chars exceeds max_field_chars={cap}")
                    cut[f"{split}.{name}"] = cut.get(f"{split}.{name}", 0) + 1
            ex = dataclasses.replace(ex, input=ex.input[:cap], output=ex.output[:cap],
                                     rejected=ex.rejected[:cap])
        out.append(ex)
    return out


def _short(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")
