"""Builders: the typed config in, the daemon's parts out."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from synlearner.daemon.config import Config
from synlearner.daemon.loop import Daemon, LoopSettings
from synlearner.daemon.metrics import Metrics
from synlearner.daemon.state import State
from synlearner.learner.base import Learner
from synlearner.memory import ExperienceMemory, HashingEmbedder
from synlearner.memory.base import Embedder
from synlearner.stream import InMemoryResultSink, InMemorySource, JsonlResultSink, SpoolSource
from synlearner.stream.base import ResultSink, TaskPublisher, TaskSource
from synlearner.stream.schema import Limits
from synlearner.stream.spool import SpoolPublisher


def build_limits(cfg: Config) -> Limits:
    lim = cfg.stream.limits
    return Limits(
        max_message_bytes=lim.max_message_bytes, max_train_examples=lim.max_train_examples,
        max_eval_examples=lim.max_eval_examples, max_field_chars=lim.max_field_chars,
        max_labels=lim.max_labels, allowed_data_roots=tuple(lim.allowed_data_roots),
    )


def build_source(cfg: Config) -> tuple[TaskSource, ResultSink]:
    if cfg.stream.kind == "spool":
        return SpoolSource(cfg.spool_dir), JsonlResultSink(cfg.spool_dir / "results.jsonl")
    return InMemorySource(), InMemoryResultSink()


def build_publisher(cfg: Config) -> TaskPublisher:
    if cfg.stream.kind == "spool":
        return SpoolPublisher(cfg.spool_dir)
    raise ValueError("stream.kind: 'memory' lives inside one process; nothing to submit to")


def build_learners(cfg: Config) -> dict[str, Learner]:
    from synlearner.learner.build import build_learners as build  # imports torch

    lc = cfg.learner
    return build(
        model_path=lc.model.path, device=lc.model.device, threads=lc.model.threads, seed=lc.seed,
        lora=lc.lora.model_dump(), train=lc.train.model_dump(),
        generation=lc.generation.model_dump(),
    )


def build_memory(cfg: Config, learners: dict[str, Learner]) -> ExperienceMemory:
    embedder: Embedder
    embedder = HashingEmbedder() if cfg.memory.embedder == "hashing" else learners["classification"].embedder
    return ExperienceMemory(cfg.state_dir / "memory", embedder, cfg.memory.index,
                            cfg.memory.capacity)


def loop_settings(cfg: Config) -> LoopSettings:
    return LoopSettings(
        limits=build_limits(cfg), poll_timeout_s=cfg.stream.poll_timeout_s,
        init=cfg.learner.init, min_init_similarity=cfg.learner.min_init_similarity,
        similar_tasks=cfg.learner.similar_tasks, replay_policy=cfg.memory.replay.policy,
        replay_ratio=cfg.memory.replay.ratio, replay_max=cfg.memory.replay.max_examples,
        seed=cfg.learner.seed, drain=cfg.daemon.drain,
        progress_every_steps=cfg.daemon.progress_every_steps,
    )


@dataclass
class Parts:
    daemon: Daemon
    metrics: Metrics
    memory: ExperienceMemory


def build_daemon(cfg: Config, learners: dict[str, Learner] | None = None) -> Parts:
    learners = learners if learners is not None else build_learners(cfg)
    source, results = build_source(cfg)
    memory = build_memory(cfg, learners)
    metrics = Metrics()
    state = State.load(cfg.state_dir)
    daemon = Daemon(loop_settings(cfg), source, results, memory, learners, state, metrics)
    return Parts(daemon, metrics, memory)


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
    for noisy in ("httpx", "urllib3", "transformers", "peft", "datasets", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
