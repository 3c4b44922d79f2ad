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
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from synlearner.learner.config import LearnerConfig
from synlearner.memory.config import MemoryConfig
from synlearner.stream.config import StreamConfig

ENV_PREFIX = "SYNLEARNER__"
HTTP_REQUEST_TIMEOUT_S = 5.0  # per read or write on a connection
HTTP_MAX_CONNECTIONS = 32  # connections served at once; the rest are answered 503


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)  # 0: any free port
    request_timeout_s: float = Field(HTTP_REQUEST_TIMEOUT_S, gt=0)
    max_connections: int = Field(HTTP_MAX_CONNECTIONS, gt=0)


class ApiConfig(_Section):
    """`synlearner serve`: answers from the committed adapters over HTTP (FastAPI)."""

    host: str = "127.0.0.1"
    port: int = Field(9465, ge=0, le=65535)  # 0: any free port
    max_body_bytes: int = Field(1 << 20, gt=0)  # a larger request is answered 413
    max_inputs: int = Field(64, gt=0)  # inputs in one request
    max_input_chars: int = Field(8192, gt=0)  # characters in one input
    max_refine: int = Field(8, ge=0)  # `refine` rounds a request may ask for
    reload_check_s: float = Field(1.0, gt=0)  # how often the state dir is checked for commits


class DaemonConfig(_Section):
    http: HttpConfig = HttpConfig()
    api: ApiConfig = ApiConfig()
    drain: bool = False  # exit once the stream is empty
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    watchdog_s: float = Field(10.0, gt=0)
    # no heartbeat (poll, training step, phase, task scored) for this long: unhealthy, and
    # the systemd watchdog is no longer fed; under systemd at most its WatchdogSec
    stall_after_s: float = Field(900.0, gt=0)
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
