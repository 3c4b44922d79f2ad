"""Builders: the typed config in, the daemon's parts out."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from synlearner.daemon.attempts import Attempts
from synlearner.daemon.config import Config, ConfigError
from synlearner.daemon.loop import Daemon
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.state import State
from synlearner.learner.base import Learner
from synlearner.learner.methods import default_methods, unknown_methods
from synlearner.memory import ExperienceMemory, HashingEmbedder
from synlearner.memory.base import Embedder
from synlearner.stream import InMemoryResultSink, InMemorySource, JsonlResultSink, SpoolSource, spool_dlq
from synlearner.stream.base import DeadLetter, ResultSink, SourceListener, TaskPublisher, TaskSource
from synlearner.stream.config import StreamConfig
from synlearner.stream.kafka import KafkaPublisher, KafkaResultSink, KafkaTaskSource
from synlearner.stream.schema import Limits
from synlearner.stream.spool import SpoolPublisher, lock_dir


def build_limits(cfg: Config) -> Limits:
    return cfg.stream.limits


def build_source(
    cfg: Config, listener: SourceListener | None = None
) -> tuple[TaskSource, ResultSink]:
    if cfg.stream.kind == "spool":
        source = SpoolSource(cfg.spool_dir, max_bytes=cfg.stream.limits.max_message_bytes,
                             failed_max_age_s=cfg.stream.failed_max_age_s,
                             failed_max_count=cfg.stream.failed_max_count)
        return source, JsonlResultSink(cfg.spool_dir / "results.jsonl")
    if cfg.stream.kind == "kafka":
        return KafkaTaskSource(cfg.stream, listener), KafkaResultSink(cfg.stream)
    return InMemorySource(), InMemoryResultSink()


def build_publisher(cfg: Config) -> TaskPublisher:
    if cfg.stream.kind == "spool":
        return SpoolPublisher(cfg.spool_dir)
    if cfg.stream.kind == "kafka":
        return KafkaPublisher(cfg.stream)
    raise ValueError("stream.kind: 'memory' lives inside one process; nothing to submit to")


def build_learners(cfg: Config) -> dict[str, Learner]:
    from synlearner.learner.build import build_learners as build  # imports torch

    return build(cfg.learner)


def memory_embedder(cfg: Config, learners: Mapping[str, Learner]) -> Embedder:
    """The encoder the memory's config names: the classifier's base model, or hashing."""
    if cfg.memory.embedder == "hashing":
        return HashingEmbedder()
    return learners["classification"].embedder


def build_memory(cfg: Config, learners: dict[str, Learner]) -> ExperienceMemory:
    """The memory with the encoder its config names."""
    return ExperienceMemory(cfg.state_dir / "memory", memory_embedder(cfg, learners), cfg.memory)


@dataclass
class Parts:
    daemon: Daemon
    metrics: Metrics
    memory: ExperienceMemory
    locks: list[int] = field(default_factory=list)  # flock fds on the state / spool dirs

    def close(self) -> None:
        """Flush and close the memory and the stream, then release the directory locks."""
        self.memory.flush()
        self.memory.close()
        self.daemon.state.close()
        self.daemon.source.close()
        self.daemon.results.close()
        for fd in self.locks:
            os.close(fd)
        self.locks.clear()


class DeadLetterStore(Protocol):
    def entries(self) -> list[DeadLetter]: ...

    def requeue(self, ids: Sequence[str] | None) -> list[str]: ...


@dataclass
class SpoolDeadLetters:
    root: Path

    def entries(self) -> list[DeadLetter]:
        return spool_dlq.list_dead_letters(self.root)

    def requeue(self, ids: Sequence[str] | None) -> list[str]:
        return spool_dlq.requeue(self.root, ids)


@dataclass
class KafkaDeadLetters:
    stream: StreamConfig
    requeued_log: Path  # which dead-letter records were republished already

    def entries(self) -> list[DeadLetter]:
        from synlearner.stream import kafka_dlq

        return kafka_dlq.list_dead_letters(self.stream, self.requeued_log)

    def requeue(self, ids: Sequence[str] | None) -> list[str]:
        from synlearner.stream import kafka_dlq

        return kafka_dlq.requeue(self.stream, None if ids is None else list(ids),
                                 self.requeued_log)


def dead_letter_store(cfg: Config) -> DeadLetterStore:
    if cfg.stream.kind == "spool":
        return SpoolDeadLetters(cfg.spool_dir)
    if cfg.stream.kind == "kafka":
        return KafkaDeadLetters(cfg.stream, cfg.state_dir / "dead-letters-requeued.json")
    raise ConfigError("dead-letters: stream.kind 'memory' keeps nothing after the process")


def build_attempts(cfg: Config) -> Attempts:
    """Spool: sidecars beside the messages in processing/; otherwise in the state dir."""
    if cfg.stream.kind == "spool":
        return Attempts(cfg.spool_dir / "processing", sidecar=True)
    return Attempts(cfg.state_dir / "attempts")


def lock_dirs(cfg: Config) -> list[int]:
    """One daemon per state directory (and per spool directory): held until exit."""
    fds = [lock_dir(cfg.state_dir, "state directory")]
    if cfg.stream.kind == "spool" and not cfg.spool_dir.resolve().is_relative_to(
            cfg.state_dir.resolve()):
        fds.append(lock_dir(cfg.spool_dir, "spool directory"))
    return fds


def build_daemon(cfg: Config, learners: dict[str, Learner] | None = None,
                 reset: bool = False) -> Parts:
    """`reset`: begin a new state where the state database is missing or unreadable."""
    for kind, names in default_methods(cfg.learner).items():
        if unknown := unknown_methods(kind, names):
            raise ConfigError(f"learner: {kind} tasks' default methods: {unknown[0]}")
    locks = lock_dirs(cfg)
    try:  # first: a state that cannot be opened stops the start before minutes of loading
        state = State.load(cfg.state_dir, cfg.daemon.jobs.adapter_versions, reset=reset)
    except BaseException:
        for fd in locks:
            os.close(fd)
        raise
    learners = learners if learners is not None else build_learners(cfg)
    metrics = Metrics()
    source, results = build_source(cfg, metrics)
    memory = build_memory(cfg, learners)
    daemon = Daemon(cfg, source, results, memory, learners, state, metrics, build_attempts(cfg))
    return Parts(daemon, metrics, memory, locks)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"ts": record.created, "level": record.levelname,
                           "logger": record.name, "msg": record.getMessage()})


def setup_logging(cfg: Config) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if cfg.daemon.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=cfg.daemon.log_level, handlers=[handler], force=True)
    for noisy in ("httpx", "urllib3", "transformers", "peft", "datasets", "apscheduler", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kafka-python logs every refused connection of an outage at ERROR; the Kafka source
    # logs its own warning once per failed operation instead. The group coordinator's
    # warnings stay (a heartbeat that expired, a generation gone stale): they say why a
    # rebalance began.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("kafka.coordinator").setLevel(logging.WARNING)
