"""The one typed root config. Sections mirror the packages; defaults live only here.

Unknown keys fail at start-up. Environment variables override the YAML:
`SYNLEARNER__<SECTION>__<KEY>=value` (double underscores between levels), e.g.
`SYNLEARNER__DAEMON__HTTP__PORT=9500`. Values stay raw strings (pydantic converts them to
numbers and booleans), except that a JSON array or object is parsed as JSON for a setting
that takes a list or a mapping: `SYNLEARNER__STREAM__KAFKA__BOOTSTRAP_SERVERS='["a:1","b:2"]'`.
Config errors name the setting, never its value.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import ErrorDetails

from synlearner.learner.config import LearnerConfig
from synlearner.memory.config import MemoryConfig
from synlearner.stream.config import StreamConfig

ENV_PREFIX = "SYNLEARNER__"
HTTP_REQUEST_TIMEOUT_S = 5.0  # to send a request head, in all (and per write of the answer)
HTTP_MAX_CONNECTIONS = 32  # requests answered at once; the rest are answered 503
HTTP_MAX_PENDING = 256  # connections still sending a request; past this the oldest is closed
MIN_TOKEN_CHARS = 16


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback(host: str) -> bool:
    """Whether `host` is "localhost" or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_bind(section: str, host: str, token: SecretStr | None) -> None:
    """A port bound beyond loopback asks for a bearer token, so it must have one."""
    if token is None and not is_loopback(host):
        env = "SYNLEARNER__" + section.upper().replace(".", "__") + "__TOKEN"
        raise ValueError(f"{section}.host is beyond loopback: set {section}.token "
                         f"(a bearer token; e.g. {env} in the environment) or bind to 127.0.0.1")
    if token is not None and len(token.get_secret_value()) < MIN_TOKEN_CHARS:
        raise ValueError(f"{section}.token: at least {MIN_TOKEN_CHARS} characters")


class HttpConfig(_Section):
    """/metrics, /healthz, /readyz and /status (daemon/http.py). With a token, /metrics and
    /status ask for it (probes never do); beyond loopback there must be one."""

    enabled: bool = Field(True, description="serve /metrics, /healthz, /readyz and /status")
    host: str = Field("127.0.0.1", description="the address to bind (beyond loopback only with a token)")
    port: int = Field(9464, ge=0, le=65535, description="the port (0: any free port)")
    request_timeout_s: float = Field(
        HTTP_REQUEST_TIMEOUT_S, gt=0, description="to send a request head, in all, however it trickles "
        "(and per write of the answer)")
    max_connections: int = Field(
        HTTP_MAX_CONNECTIONS, gt=0, description="requests answered at once; more are answered 503")
    max_pending: int = Field(
        HTTP_MAX_PENDING, gt=0,
        description="connections still sending a request head; past this the oldest closes")
    token: SecretStr | None = Field(
        None, description="the bearer token /metrics and /status ask for (needed beyond loopback)")

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> HttpConfig:
        _check_bind("daemon.http", self.host, self.token)
        return self


class ApiConfig(_Section):
    """The HTTP API (FastAPI) that answers from the committed adapters: `synlearner serve`,
    and the training daemon itself unless `enabled` is false (its models are a copy of the
    daemon's, loaded by the first request). With a token, /v1/* and /metrics ask for it
    (probes never do); beyond loopback there must be one."""

    enabled: bool = Field(
        True, description="serve the API from the training daemon too (`synlearner serve` always does)")
    host: str = Field("127.0.0.1", description="the address to bind (beyond loopback only with a token)")
    port: int = Field(9465, ge=0, le=65535, description="the port (0: any free port)")
    max_body_bytes: int = Field(1 << 20, gt=0, description="a larger request is answered 413")
    max_inputs: int = Field(64, gt=0, description="inputs in one request")
    max_input_chars: int = Field(8192, gt=0, description="characters in one input")
    max_refine: int = Field(8, ge=0, description="`refine` rounds a request may ask for")
    reload_check_s: float = Field(
        1.0, gt=0, description="how often the state directory is checked for commits")
    request_timeout_s: float = Field(
        5.0, gt=0, description="to send a whole request, in all; then it is closed")
    max_pending: int = Field(
        256, gt=0, description="connections still sending a request; past this the oldest closes")
    max_queue: int = Field(
        8, ge=0, description="predictions waiting for the model; more are answered 503 (Retry-After)")
    queue_timeout_s: float = Field(10.0, gt=0, description="longest wait for the model (past it: 503)")
    token: SecretStr | None = Field(
        None, description="the bearer token /v1/* and /metrics ask for (needed beyond loopback)")

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> ApiConfig:
        _check_bind("daemon.api", self.host, self.token)
        return self


class JobsConfig(_Section):
    """Scheduled upkeep (APScheduler queues each job; the main loop runs it between tasks,
    drift and compaction only while the stream is idle). An interval of 0 turns a job off."""

    drift_every_s: float = Field(
        6 * 3600, ge=0, description="re-evaluate every task with its adapter this often (idle only; 0: off)")
    drift_tolerance: float = Field(0.02, ge=0, description="a score this far from its record is logged")
    retention_every_s: float = Field(
        3600, ge=0, description="remove what is past the limits below this often (0: off)")
    adapter_versions: int = Field(2, ge=1, description="folders kept per adapter key (latest first)")
    done_max_age_s: float = Field(
        7 * 86400, ge=0, description="spool done/ messages older than this are deleted (0: kept)")
    max_results_bytes: int = Field(
        64 << 20, ge=0, description="spool results.jsonl is rotated past this size (0: never)")
    compaction_every_s: float = Field(
        24 * 3600, ge=0,
        description="compact the memory (duplicates, free pages) this often (idle only; 0: off)")


class DaemonConfig(_Section):
    http: HttpConfig = Field(HttpConfig(), description="/metrics, /healthz, /readyz and /status")
    api: ApiConfig = Field(ApiConfig(), description="the HTTP API (POST /v1/predict, GET /v1/tasks)")
    jobs: JobsConfig = Field(JobsConfig(), description="scheduled upkeep, run between tasks")
    drain: bool = Field(False, description="exit once the stream is empty")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG | INFO | WARNING | ERROR")
    log_format: Literal["text", "json"] = Field("text", description="text | json (one object a line)")
    watchdog_s: float = Field(
        10.0, gt=0, description="how often the systemd watchdog is fed when systemd names no interval")
    # a heartbeat: a poll, a training step, a phase, a task scored
    stall_after_s: float = Field(900.0, gt=0, description="no heartbeat this long: unhealthy, the "
                                 "watchdog unfed (under systemd at most WatchdogSec)")
    progress_every_steps: int = Field(10, gt=0, description="log training progress every N steps")


class Config(_Section):
    state_dir: Path = Field(
        Path("state"), description="adapters, memory, task definitions, state.sqlite3 (and the spool)")
    stream: StreamConfig = Field(StreamConfig(), description="where tasks come from and results go")
    memory: MemoryConfig = Field(MemoryConfig(), description="experience and error memory, and replay")
    learner: LearnerConfig = Field(LearnerConfig(), description="the models, adapters and training")
    daemon: DaemonConfig = Field(DaemonConfig(), description="HTTP, jobs, logging and health")

    @property
    def spool_dir(self) -> Path:
        return self.stream.spool_dir or self.state_dir / "spool"


log = logging.getLogger("synlearner.daemon")


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


MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 16  # the config's own sections are at most 4 deep


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping; every way it can be wrong is one `ConfigError` line."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: over {MAX_CONFIG_BYTES} bytes; not a config file")
    try:
        text = raw.decode("utf-8")
        # an alias repeats a node without its bytes: a small file could expand past memory
        if any(isinstance(token, yaml.AliasToken) for token in yaml.scan(text)):
            raise ConfigError(f"{path}: YAML aliases (*name) are not taken in a config")
        loaded = yaml.safe_load(text) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:  # its text quotes the file, which may hold secrets
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested more than {MAX_CONFIG_DEPTH} levels deep") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    if _depth(loaded) > MAX_CONFIG_DEPTH:
        raise ConfigError(f"{path}: nested more than {MAX_CONFIG_DEPTH} levels deep")
    return loaded


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in `value` (iterative: no recursion limit)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_CONFIG_DEPTH:
                todo += [(v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


# keys that were renamed: old dotted name -> new one (the old one is read, with a warning)
RENAMED = {
    "learner.generation.phases": "learner.generation.methods",
    "learner.generation.synthesis.phases": "learner.generation.synthesis.methods",
}


def _rename_old_keys(data: dict[str, Any], where: str) -> None:
    for old, new in RENAMED.items():
        *parents, leaf = old.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        new_leaf = new.rsplit(".", 1)[1]
        if new_leaf in node:
            raise ConfigError(f"{old}{where}: the old name of {new}; give {new} only")
        node[new_leaf] = node.pop(leaf)
        log.warning("config%s: %s is the old name of %s; rename it", where, old, new)


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load YAML (if given), apply env overrides, then explicit overrides (dotted keys)."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(Path(path))
    _apply_env(data, os.environ if env is None else env)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    _rename_old_keys(data, f" in {path}" if path else "")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors(include_url=False, include_input=True)]
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid config{where}: " + "; ".join(lines)) from None


# Settings a running daemon takes on SIGHUP (each read where it is used, per task or per
# poll); a change to any other is refused with a log line naming it (restart to apply).
LIVE_SETTINGS = (
    "daemon.log_level", "daemon.progress_every_steps", "daemon.stall_after_s", "daemon.drain",
    "stream.poll_timeout_s", "stream.max_attempts", "stream.backoff_max_s",
    "stream.limits.max_json_depth", "stream.limits.max_train_examples",
    "stream.limits.max_eval_examples", "stream.limits.max_field_chars",
    "stream.limits.max_labels", "stream.limits.on_oversize", "stream.limits.max_number_chars",
    "stream.limits.max_data_file_bytes", "stream.limits.max_data_line_bytes",
    "learner.min_init_similarity", "learner.promote", "learner.promote_examples",
    "learner.consolidate_every", "daemon.jobs.drift_tolerance", "daemon.jobs.adapter_versions",
    "daemon.jobs.done_max_age_s", "daemon.jobs.max_results_bytes",
)


def _leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def live_update(running: Config, loaded: Config) -> tuple[Config, list[str], list[str]]:
    """The config a running daemon goes on with after `loaded` was read on SIGHUP: the
    running one with the changes to `LIVE_SETTINGS` applied. Returns it, the settings
    applied and the settings refused (changed, but only read at start), by dotted name."""
    old, new = _leaves(running.model_dump()), _leaves(loaded.model_dump())
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    applied = [k for k in changed if k in LIVE_SETTINGS]
    refused = [k for k in changed if k not in LIVE_SETTINGS]
    data = running.model_dump()
    for dotted in applied:
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = new[dotted]
    return Config.model_validate(data), applied, refused
