"""`synlearner predict`: answers from the committed adapters, one process per call (the
HTTP API of `serving.py` keeps the model resident instead)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping

from synlearner.daemon.config import Config
from synlearner.daemon.state import State
from synlearner.learner.base import Learner
from synlearner.stream.schema import Task


def predict(args: argparse.Namespace, cfg: Config) -> int:
    """`synlearner predict`: answer with a task's adapter, or routed without a task id."""
    from synlearner.daemon.build import build_learners

    state = State.read(cfg.state_dir)
    if args.task is None:
        return _predict_routed(cfg, state, args.text)
    entry = state.latest(args.task)
    if entry is None:
        print(f"predict: task {args.task!r} has not been learned", file=sys.stderr)  # noqa: T201
        return 2
    task = state.load_task(args.task)
    learners = build_learners(cfg)
    learner = learners[task.kind]
    key = state.answer_key(args.task)  # its own adapter, or a later one that took over
    learner.load_adapter(key, state.root / (state.latest(key) or entry).adapter)
    if args.refine:
        return _predict_refined(args, state, task, learners, key)
    for text, answer in zip(args.text, learner.predict(task, args.text, key), strict=True):
        print(json.dumps({"input": text, "task": args.task, "prediction": answer}))  # noqa: T201
    return 0


def _predict_refined(args: argparse.Namespace, state: State, task: Task,
                     learners: Mapping[str, Learner], key: str) -> int:
    """`predict --refine K`: generate, score with a verifier, ask again (generation tasks,
    scored by a verification task's verifier; synthesis tasks, scored by their judge)."""
    from synlearner.learner.rewards import parse, verifier_tasks

    learner = learners[task.kind]
    if task.kind == "synthesis":
        judge_key = learner.judge_of(task).adapter  # type: ignore[attr-defined]
        judged = state.latest(judge_key) if judge_key else None
        if judged is not None:
            learners["classification"].load_adapter(judge_key, state.root / judged.adapter)
        verifier = None
    else:
        named = args.verifier or next(iter(verifier_tasks(parse(task.reward))), None)
        judge = state.latest(named) if named else None
        if task.kind != "generation" or judge is None or judge.kind != "verification":
            print("predict --refine: needs a synthesis task, or a generation task and a learned "  # noqa: T201
                  "verification task (--verifier, or a verifier term in the task's reward)",
                  file=sys.stderr)
            return 2
        learner.load_adapter(judge.task_id, state.root / judge.adapter)
        verifier = judge.task_id
    t0 = time.perf_counter()
    refined = learner.refine(task, args.text, key, args.refine,  # type: ignore[attr-defined]
                             args.threshold, verifier)
    per_input = (time.perf_counter() - t0) / len(args.text)
    for text, r in zip(args.text, refined, strict=True):
        print(json.dumps({"input": text, "task": args.task, "prediction": r.answer,  # noqa: T201
                          "score": round(r.score, 3), "rounds": r.rounds,
                          "seconds_per_input": round(per_input, 3)}))
    return 0


def _predict_routed(cfg: Config, state: State, texts: list[str]) -> int:
    """No task id: route each text to the nearest task centroid in memory (its label set),
    answer with that task's adapter (or the consolidated one, where the config merges)."""
    from synlearner.daemon.agnostic import answering_adapter, merge_method, route_task
    from synlearner.daemon.build import build_learners, build_memory

    if not state.entries:
        print("predict: nothing has been learned yet", file=sys.stderr)  # noqa: T201
        return 2
    learners = build_learners(cfg)
    memory = build_memory(cfg, learners)
    try:
        routes = route_task(memory, texts)
    finally:
        memory.close()
    for text, task_id in zip(texts, routes, strict=True):
        entry = state.latest(task_id) if task_id else None
        if entry is None or task_id is None:
            print(json.dumps({"input": text, "error": "no learned task"}))  # noqa: T201
            continue
        task = state.load_task(task_id)
        learner = learners[task.kind]
        key, path = answering_adapter(state, entry, merge_method(cfg.learner))
        if not learner.has_adapter(key):
            learner.load_adapter(key, path)
        answer = learner.predict(task, [text], key)[0]
        print(json.dumps({"input": text, "task": task_id, "adapter": key,  # noqa: T201
                          "prediction": answer}))
    return 0
