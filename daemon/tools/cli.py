"""`synlearner` command line: run, submit, status, report, predict, demo, bench, dead-letters."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from synlearner.daemon.config import Config, ConfigError, load_config
from synlearner.daemon.state import State, StateError

log = logging.getLogger("synlearner")


def _config(args: argparse.Namespace, **overrides: Any) -> Config:
    return load_config(Path(args.config) if args.config else None, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from synlearner.daemon.build import build_daemon, setup_logging
    from synlearner.daemon.notify import extending_start
    from synlearner.daemon.service import Service

    overrides = {"daemon.drain": True} if args.drain else {}
    cfg = _config(args, **overrides)
    setup_logging(cfg)
    with extending_start():  # model, adapters, memory: up to minutes before READY=1
        parts = build_daemon(cfg, reset=args.reset)
    Service(cfg, parts, reload=lambda: _config(args, **overrides)).run()
    return 0


def _read_task_files(paths: list[str]) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for name in paths:
        path = Path(name)
        files = sorted(path.glob("*.json*")) if path.is_dir() else [path]
        for f in files:
            if f.suffix == ".jsonl":
                out += [(f"{f.stem}-{i}", line) for i, line in
                        enumerate(f.read_bytes().splitlines()) if line.strip()]
            else:
                out.append((f.stem, f.read_bytes()))
    return out


def cmd_submit(args: argparse.Namespace) -> int:
    from synlearner.daemon.build import build_publisher

    publisher = build_publisher(_config(args))
    for key, raw in _read_task_files(args.files):
        with contextlib.suppress(ValueError, AttributeError):  # dead-lettered by the daemon
            key = str(json.loads(raw).get("task_id", key))
        print(f"submitted {key}: {publisher.submit(raw, key)}")  # noqa: T201  # CLI output
    publisher.close()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from synlearner.memory.records import read_counts
    from synlearner.stream.spool import SpoolSource

    cfg = _config(args)
    state = State.read(cfg.state_dir)
    body: dict[str, Any] = {
        "state_dir": str(cfg.state_dir),
        "tasks": [{"task": e.column, "version": e.version, "final": e.final,
                   "adapter": e.adapter} for e in state.entries],
        "memory": read_counts(cfg.state_dir / "memory"),
        "latest_accuracy": state.latest_scores(),
        "transfer": state.metrics().as_dict() if state.entries else {},
        "task_agnostic": agnostic.as_dict() if (agnostic := state.agnostic_metrics()) else {},
    }
    if cfg.stream.kind == "spool":
        body["pending"] = SpoolSource(cfg.spool_dir).pending()
    elif cfg.stream.kind == "kafka":
        from synlearner.stream.kafka import consumer_lag

        lag = consumer_lag(cfg.stream)
        body["consumer_lag"] = lag
        body["pending"] = sum(lag.values())
    print(json.dumps(body, indent=2))  # noqa: T201  # CLI output
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from synlearner.daemon.tools.report import build_report, render_text, write_report

    cfg = _config(args)
    state = State.read(cfg.state_dir)
    paths = write_report(state, Path(args.out) if args.out else cfg.state_dir / "report")
    print(render_text(build_report(state)))  # noqa: T201  # CLI output
    print("\n" + "\n".join(f"wrote {p}" for p in paths.values()))  # noqa: T201  # CLI output
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from synlearner.daemon.tools.predict import predict

    return predict(args, _config(args))


def cmd_serve(args: argparse.Namespace) -> int:
    """A read-only replica over the state directory: the HTTP API of `daemon/api.py`."""
    from synlearner.daemon.api import ApiServer, create_app
    from synlearner.daemon.build import build_learners, setup_logging
    from synlearner.daemon.serving import Predictor

    # --host and --port are validated as the config is: beyond loopback only with a token
    bind = {f"daemon.api.{k}": v for k, v in (("host", args.host), ("port", args.port))
            if v is not None}
    cfg = _config(args, **bind)
    api = cfg.daemon.api
    setup_logging(cfg)
    app = create_app(Predictor(cfg, build_learners(cfg)), api)
    server = ApiServer(app, api, log_level=cfg.daemon.log_level.lower())
    log.info("serving on http://%s:%d (token: %s)", api.host, server.port,
             "required" if api.token is not None else "none")
    server.run()
    return 0


def cmd_install_service(args: argparse.Namespace) -> int:
    from synlearner.daemon.tools.install import InstallError, install, next_steps

    root, state_dir = Path(args.root), Path(args.state_dir)
    try:
        lines = install(root, args.user, state_dir)
    except InstallError as exc:
        print(f"install-service: {exc}", file=sys.stderr)  # noqa: T201  # CLI output
        return 2
    except OSError as exc:  # not root, a read-only root, no checkout
        why = f"cannot write {exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        hint = " (run it as root, or stage it with --root)" if isinstance(exc, PermissionError) else ""
        print(f"install-service: {why}{hint}", file=sys.stderr)  # noqa: T201  # CLI output
        return 1
    for line in lines:
        print(line)  # noqa: T201  # CLI output
    print("then, as root:")  # noqa: T201  # CLI output
    for step in next_steps(root, args.user, state_dir):
        print(f"  {step}")  # noqa: T201  # CLI output
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from synlearner.daemon.build import build_daemon, setup_logging
    from synlearner.daemon.service import Service
    from synlearner.daemon.tools.demo import demo_messages
    from synlearner.daemon.tools.report import build_report, render_text, write_report
    from synlearner.stream.spool import SpoolPublisher

    work = Path(args.workdir)
    cfg = _config(args, state_dir=str(work / "state"), **{"daemon.drain": True})
    setup_logging(cfg)
    if cfg.stream.kind != "spool":
        raise ConfigError("demo: stream.kind must be 'spool'")
    publisher = SpoolPublisher(cfg.spool_dir)
    messages = demo_messages(args.seed)
    for task_id, raw in messages:
        publisher.submit(raw, task_id)
    log.info("demo: %d tasks submitted to %s", len(messages), cfg.spool_dir)
    started = time.perf_counter()
    parts = build_daemon(cfg)
    Service(cfg, parts).run()
    paths = write_report(parts.daemon.state, work / "report")
    print(render_text(build_report(parts.daemon.state)))  # noqa: T201  # CLI output
    print(f"\nlearning took {time.perf_counter() - started:.1f} s")  # noqa: T201  # CLI output
    print("\n".join(f"wrote {p}" for p in paths.values()))  # noqa: T201  # CLI output
    return 0


def _stream(spec: str, seed: int | None) -> list[bytes]:
    from synlearner.bench.streams.bundled import benchmark_messages
    from synlearner.bench.streams.generative import generation_messages
    from synlearner.bench.streams.hard import hard_messages
    from synlearner.bench.streams.synthesis import synthesis_messages

    if spec == "bundled":
        return [raw for _, raw in benchmark_messages(13 if seed is None else seed)]
    if spec == "hard":
        return [raw for _, raw in hard_messages(17 if seed is None else seed)]
    if spec == "bundled-generation":
        return [raw for _, raw in generation_messages(29 if seed is None else seed)]
    if spec == "bundled-synthesis":
        return [raw for _, raw in synthesis_messages(31 if seed is None else seed)]
    if not Path(spec).exists():
        raise ConfigError(f"STREAM: {spec} is neither 'bundled', 'hard', 'bundled-generation', "
                          "'bundled-synthesis' nor a file or folder")
    return [raw for _, raw in _read_task_files([spec])]


def _kind(messages: list[bytes]) -> str:
    """generation when every task of the stream is a generation task; synthesis when one is
    a synthesis task"""
    kinds = set()
    for raw in messages:
        try:
            kinds.add(json.loads(raw).get("kind"))
        except (ValueError, AttributeError):
            kinds.add(None)
    if "synthesis" in kinds:
        return "synthesis"
    return "generation" if kinds == {"generation"} else "classification"


def cmd_bench(args: argparse.Namespace) -> int:
    from synlearner.bench.compare import (
        GENERATION_STRATEGIES,
        STRATEGIES,
        SYNTHESIS_STRATEGIES,
        BenchSettings,
        run_bench,
    )
    from synlearner.bench.compare_report import render_text, write_bench_report

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    messages = _stream(args.stream, args.stream_seed)
    if args.tasks:
        messages = messages[: args.tasks]
    kind = _kind(messages)
    overrides = {"learner.generation.model": args.model} if args.model else {}
    settings = BenchSettings(steps=args.steps, curve_every=args.curve_every, seed=args.seed,
                             config=Path(args.config) if args.config else None,
                             overrides=overrides, kind=kind)
    names = args.strategies or ",".join(
        GENERATION_STRATEGIES if kind == "generation"
        else SYNTHESIS_STRATEGIES if kind == "synthesis" else STRATEGIES)
    started = time.perf_counter()
    summary = run_bench(messages, [s for s in names.split(",") if s], settings,
                        Path(args.workdir) if args.workdir else None)
    paths = write_bench_report(summary, Path(args.out))
    print(render_text(summary))  # noqa: T201  # CLI output
    print(f"\nbench took {time.perf_counter() - started:.0f} s")  # noqa: T201  # CLI output
    print("\n".join(f"wrote {p}" for p in paths.values()))  # noqa: T201  # CLI output
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """List dead letters, or requeue them (spool: back into incoming/; Kafka: republished).
    `requeue --all` leaves out those quarantined for crashing the daemon (`crashed N
    times`): they go back only when named."""
    import shlex

    from synlearner.daemon.build import dead_letter_store
    from synlearner.stream.spool_dlq import crashed

    cfg = _config(args)
    if args.action == "park":
        return _park(cfg.state_dir, args.task, args.wait)
    store = dead_letter_store(cfg)
    if args.action == "list":
        letters = store.entries()
        if args.json:
            print(json.dumps([dataclasses.asdict(d) for d in letters], indent=1))  # noqa: T201
            return 0
        for d in letters:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.when))
            flags = "".join([" [requeued]" if d.requeued else "", " [stub]" if d.stub else ""])
            print(f"{d.id}  {when}  attempts={d.attempts}{flags}\n    {d.reason}")  # noqa: T201
        print(f"{len(letters)} dead letters")  # noqa: T201  # CLI output
        return 0
    if not args.ids and not args.all:
        print("dead-letters requeue: give IDs or --all", file=sys.stderr)  # noqa: T201
        return 2
    held = [d.id for d in store.entries() if crashed(d) and not d.requeued] if args.all else []
    try:
        done = store.requeue(None if args.all else args.ids)
    except KeyError as exc:
        print(f"dead-letters requeue: {exc.args[0]}", file=sys.stderr)  # noqa: T201
        return 2
    for ref in done:
        print(f"requeued {ref}")  # noqa: T201  # CLI output
    if held:
        example = " ".join(shlex.quote(i) for i in held[:3]) + (" ..." if len(held) > 3 else "")
        print(f"skipped {len(held)} quarantined for crashing the daemon ('crashed N times'); "  # noqa: T201
              f"once the cause is fixed, requeue each by id: synlearner dead-letters requeue "
              f"{example}")
    return 0


def _park(state_dir: Path, task_id: str | None, wait_s: float) -> int:
    """Ask the daemon to move the message it holds on a fault aside (`daemon/park.py`); it
    takes the request between two retries, so the command waits up to `wait_s`."""
    from synlearner.daemon.park import request_park, wait_parked

    print(f"waiting up to {wait_s:.0f} s for the daemon's next retry ...",  # noqa: T201
          file=sys.stderr)
    if wait_parked(request_park(state_dir, task_id, wait_s), timeout_s=wait_s):
        print("parked: the held message is a dead letter now (dead-letters list; requeue it "  # noqa: T201
              "once the fault is fixed)")
        return 0
    which = f"task {task_id}" if task_id else "a message"
    print(f"dead-letters park: the daemon of {state_dir} is not holding {which} (nothing "  # noqa: T201
          "was parked)", file=sys.stderr)
    return 1


def cmd_config(args: argparse.Namespace) -> int:
    """The configuration reference, generated from the config models (built-in defaults,
    not `--config`): `defaults` is configs/default.yaml, `docs` docs/configuration.md."""
    from synlearner.daemon.config_reference import defaults_yaml, reference_markdown

    text = defaults_yaml() if args.what == "defaults" else reference_markdown()
    print(text, end="")  # noqa: T201  # CLI output
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synlearner", description=__doc__)
    parser.add_argument("--config", help="YAML config (default: built-in defaults)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the daemon until stopped")
    p.add_argument("--drain", action="store_true", help="exit once the stream is empty")
    p.add_argument("--reset", action="store_true", help="begin a new state where the state "
                   "database is missing or unreadable (what it held is moved aside, not deleted)")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("submit", help="publish task files (JSON, JSONL, or folders of them)")
    p.add_argument("files", nargs="+")
    p.set_defaults(fn=cmd_submit)
    sub.add_parser("status", help="learned tasks, memory size, latest metrics").set_defaults(
        fn=cmd_status)
    p = sub.add_parser("report", help="render the report from the state directory")
    p.add_argument("--out", help="output folder (default: <state_dir>/report)")
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser("predict", help="answer with a task's adapter, or without a task id "
                       "(routed to the nearest task in memory)")
    p.add_argument("--task", help="the task id (default: route each text)")
    p.add_argument("--refine", type=int, default=0, metavar="K",
                   help="generation tasks: up to K rounds of answer, verifier score, improve")
    p.add_argument("--verifier", help="the verification task that scores refinements "
                   "(default: the task reward's verifier)")
    p.add_argument("--threshold", type=float, default=4.5,
                   help="stop refining an answer once the verifier scores it this (0-5)")
    p.add_argument("text", nargs="+")
    p.set_defaults(fn=cmd_predict)
    p = sub.add_parser("serve", help="serve the committed adapters over HTTP (read-only replica "
                       "of the state directory)")
    p.add_argument("--host", help="bind address (default: daemon.api.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: daemon.api.port)")
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("install-service", help="install the systemd unit, the config and the "
                       "state directory (never overwrites a config)")
    p.add_argument("--root", default="/", help="install under this folder (default: /)")
    p.add_argument("--user", default="synlearner", help="the user the daemon runs as")
    p.add_argument("--state-dir", default="/var/lib/synlearner",
                   help="an absolute path without spaces (default: /var/lib/synlearner)")
    p.set_defaults(fn=cmd_install_service)
    p = sub.add_parser("demo", help="learn the bundled demo stream and print the report")
    p.add_argument("--workdir", default="demo-run")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("bench", help="run a task stream through several strategies and compare")
    p.add_argument("stream", help="'bundled' (the 13-task benchmark stream), 'hard' (the "
                   "11-task stream where strategies differ), 'bundled-generation' (8 generative "
                   "tasks with exact answers), a JSONL file of task messages, or a folder of "
                   "task files")
    p.add_argument("--strategies", default=None,
                   help="comma-separated (default: seq-lora,replay,per-task,multitask,synlearner; "
                   "for a generation stream sft,self-train-fixed,self-train-balanced,dpo-errors,"
                   "dpo-template,synlearner)")
    p.add_argument("--model", help="generation model: smollm2 (default), tiny (untrained, "
                   "quick), or a local Hugging Face folder")
    p.add_argument("--tasks", type=int, default=0, help="only the stream's first N tasks")
    p.add_argument("--steps", type=int, default=24, help="optimiser steps per task (all strategies)")
    p.add_argument("--curve-every", type=int, default=4, help="eval accuracy every N steps")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--stream-seed", type=int, default=None,
                   help="seed of the generated stream (default: bundled 13, hard 17, "
                   "bundled-generation 29)")
    p.add_argument("--out", default="bench-report", help="report folder")
    p.add_argument("--workdir", help="keep each strategy's state directory here")
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("dead-letters", help="list dead-lettered messages, requeue them, or "
                       "park the message the daemon holds on a fault")
    p.add_argument("action", choices=["list", "requeue", "park"])
    p.add_argument("--task", help="park: only if the held message is this task")
    p.add_argument("--wait", type=float, default=120.0, help="park: seconds to wait for the "
                   "daemon's next retry (default 120)")
    p.add_argument("ids", nargs="*", help="requeue: the dead letters' ids (see list)")
    p.add_argument("--all", action="store_true", help="requeue: every dead letter but those "
                   "quarantined for crashing the daemon (requeue those by id)")
    p.add_argument("--json", action="store_true", help="list: as JSON")
    p.set_defaults(fn=cmd_dead_letters)
    p = sub.add_parser("config", help="print the configuration reference, generated from the code")
    p.add_argument("what", choices=["defaults", "docs"], help="defaults: every key at its default "
                   "with its help, as YAML (configs/default.yaml); docs: the Markdown reference "
                   "(docs/configuration.md)")
    p.set_defaults(fn=cmd_config)
    # allow --config after the subcommand too
    for action in sub.choices.values():
        action.add_argument("--config", default=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, StateError) as exc:
        print(f"synlearner: {exc}", file=sys.stderr)  # noqa: T201  # CLI output
        return 2
    except OSError as exc:  # a file named on the command line or in the config
        where = f": {exc.filename}" if exc.filename else ""
        print(f"synlearner: {exc.strerror or exc}{where}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
