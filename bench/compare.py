"""`synlearner bench`: one task stream through several strategies, side by side.

Every strategy is a named set of config overrides on the same daemon code (the loop in
`daemon/loop.py`, the learners, the memory): the same model, the same optimiser steps per
task (`learner.train.steps`), the same seeds. Each strategy runs in its own process, so its
peak memory is its own, on an in-memory stream that is drained and then summarised from the
daemon's own state (accuracy matrices, learning curves, init probes).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synlearner.daemon.config import Config, ConfigError, load_config
from synlearner.daemon.state import State
from synlearner.daemon.transfer import transfer_metrics

log = logging.getLogger("synlearner.bench")

STRATEGIES: dict[str, dict[str, Any]] = {
    # one adapter trained task after task, nothing replayed: the naive lower bound
    "seq-lora": {"learner.adapters": "shared", "memory.replay.ratio": 0.0},
    # one adapter, a uniform sample of everything seen replayed: the classic baseline
    "replay": {"learner.adapters": "shared", "memory.replay.policy": "reservoir",
               "memory.replay.ratio": 0.5},
    # a fresh adapter per task, answered with the right one: no interference, no transfer
    "per-task": {"learner.adapters": "per-task", "learner.init": "fresh",
                 "memory.replay.ratio": 0.0, "learner.consolidate": "none"},
    # one adapter on all tasks at once, steps x tasks steps: the upper bound, not streaming
    "multitask": {"learner.adapters": "joint", "memory.replay.ratio": 0.0},
    # the defaults: nearest-task init with a held-out check, replay from the experience and
    # error memory, promotion, task-agnostic answers routed to the nearest task's adapter
    "synlearner": {},
}


_ST, _PF = "learner.generation.self_train", "learner.generation.preference"


def generation_strategy(name: str, steps: int) -> dict[str, Any]:
    """The generative stream's strategies. Each task gets the same budget of optimiser steps
    (`steps`, batch `learner.generation.batch_size`), split between the phases a strategy
    runs: SFT alone; SFT then two self-training rounds (fixed T 0.7 and B-STaR's tau 0, or
    the balanced search); SFT then DPO with rejected answers from the error memory or from
    RLearner's templates; and the combination recommended (one balanced round, then DPO on
    errors). B-STaR's rewards lie in [-1, 1], synlearner's in [0, 1]: its fixed tau 0 (keep
    what the reward scores positive) is tau 0.5 here; tau 0 would keep every answer."""
    half, quarter = max(1, steps // 2), max(1, steps // 4)
    sft_only = {"learner.generation.methods": ["sft"], "learner.train.steps": steps}

    def self_train(search: str) -> dict[str, Any]:
        return {"learner.generation.methods": ["sft", "self_train"], "learner.train.steps": half,
                f"{_ST}.rounds": 2, f"{_ST}.steps": max(1, (steps - half) // 2),
                f"{_ST}.search": search, f"{_ST}.temperature": 0.7, f"{_ST}.tau": 0.5}

    def dpo(negatives: list[str]) -> dict[str, Any]:
        return {"learner.generation.methods": ["sft", "preference"], "learner.train.steps": half,
                f"{_PF}.steps": steps - half, f"{_PF}.negatives": negatives}

    table: dict[str, dict[str, Any]] = {
        "sft": sft_only,
        "self-train-fixed": self_train("fixed"),
        "self-train-balanced": self_train("balanced"),
        "dpo-errors": dpo(["own", "neighbour", "candidate"]),
        "dpo-template": dpo(["candidate", "template"]),
        "synlearner": {"learner.generation.methods": ["sft", "self_train", "preference"],
                       "learner.train.steps": half, f"{_ST}.rounds": 1, f"{_ST}.steps": quarter,
                       f"{_ST}.search": "balanced",
                       f"{_PF}.steps": max(1, steps - half - quarter)},
    }
    if name not in table:
        raise ConfigError(f"strategies: unknown strategy {name!r} for a generation stream "
                          f"(known: {', '.join(table)})")
    return table[name]


GENERATION_STRATEGIES = ("sft", "self-train-fixed", "self-train-balanced", "dpo-errors",
                         "dpo-template", "synlearner")


_SY = "learner.generation.synthesis"
# a synthesis stream's strategies (`bundled-synthesis`): what writes the few-shot tasks'
# synthetic examples. Every strategy learns each classification task for the same steps.
SYNTHESIS_STRATEGIES: dict[str, dict[str, Any]] = {
    # the few-shot tasks learn from their own examples only: the stream's synthesis tasks
    # and the classification tasks' `synthesize` requests are left out
    "few-shot": {},
    "synthesis-sft": {f"{_SY}.methods": ["sft"]},  # the generator after SFT alone
    "synthesis-hro": {f"{_SY}.methods": ["sft", "grpo"]},  # then GRPO, hierarchical reward
    "synthesis-hro-nodiversity": {f"{_SY}.methods": ["sft", "grpo"], f"{_SY}.weights": {
        "label": 0.1, "attribute": 0.1, "quality": 0.5, "diversity": 0.0}},
}


def strategy_messages(name: str, settings: BenchSettings, messages: Sequence[bytes]) -> list[bytes]:
    """The stream a strategy learns: as given, but for `few-shot` on a synthesis stream."""
    if settings.kind != "synthesis" or name != "few-shot":
        return list(messages)
    out = []
    for raw in messages:
        msg = json.loads(raw)
        if msg.get("kind") != "synthesis":
            msg.pop("synthesize", None)
            out.append(json.dumps(msg).encode())
    return out


@dataclass(frozen=True)
class BenchSettings:
    steps: int = 30  # optimiser steps per task, for every strategy
    curve_every: int = 5  # eval accuracy every N steps (sample efficiency)
    seed: int = 0
    config: Path | None = None  # the user's config; strategies override parts of it
    overrides: dict[str, Any] = field(default_factory=dict)
    kind: str = "classification"  # the stream's tasks: classification, generation, synthesis


def strategy_overrides(name: str, settings: BenchSettings) -> dict[str, Any]:
    if settings.kind == "generation":
        return generation_strategy(name, settings.steps)
    if settings.kind == "synthesis":
        if name not in SYNTHESIS_STRATEGIES:
            raise ConfigError(f"strategies: unknown strategy {name!r} for a synthesis stream "
                              f"(known: {', '.join(SYNTHESIS_STRATEGIES)})")
        return SYNTHESIS_STRATEGIES[name]
    if name not in STRATEGIES:
        raise ConfigError(f"strategies: unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return STRATEGIES[name]


def strategy_config(name: str, settings: BenchSettings, state_dir: Path) -> Config:
    overrides = {
        **settings.overrides, "state_dir": str(state_dir),
        "stream.kind": "memory", "daemon.drain": True, "daemon.http.enabled": False,
        "learner.train.steps": settings.steps, "learner.curve_every": settings.curve_every,
        "learner.seed": settings.seed,
        # score the task-agnostic row after every task, so its BWT is defined (the daemon's
        # default does this only when the stream is idle)
        "learner.consolidate_every": 1,
        **strategy_overrides(name, settings),
    }
    if settings.kind != "classification":  # answers without a task id are not compared here
        overrides["learner.task_agnostic"] = False
    return load_config(settings.config, overrides, env={})


def run_strategy(name: str, messages: Sequence[bytes], settings: BenchSettings,
                 state_dir: Path) -> dict[str, Any]:
    """Run one strategy over `messages` in this process; return its state and costs."""
    from synlearner.daemon.build import build_daemon, setup_logging

    cfg = strategy_config(name, settings, state_dir)
    setup_logging(cfg.model_copy(update={"daemon": cfg.daemon.model_copy(
        update={"log_level": "WARNING"})}))
    started = time.perf_counter()
    parts = build_daemon(cfg)
    loaded = time.perf_counter()
    for raw in strategy_messages(name, settings, messages):
        parts.daemon.source.submit(raw, "")  # type: ignore[attr-defined]  # in-memory source
    parts.daemon.run()
    finished = time.perf_counter()
    ids, matrix = parts.memory.task_similarity()
    synthetic = _synthetic_sets(parts.memory)
    parts.close()
    state = State.read(state_dir)
    return {
        "strategy": name, "overrides": strategy_overrides(name, settings),
        "adapters": cfg.learner.adapters,
        "seconds": finished - loaded, "load_seconds": loaded - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "state": state.as_dict() if state.entries else None,
        "similarity": {"tasks": ids, "matrix": matrix}, "synthetic": synthetic,
    }


def _synthetic_sets(memory: Any) -> dict[str, dict[str, float]]:
    """The diversity of each task's kept synthetic examples (`learner.synthesis.set_diversity`)."""
    from synlearner.learner.synthesis import set_diversity

    by_task: dict[str, list[str]] = {}
    for r in memory.records(split="synthetic", kind="experience"):
        by_task.setdefault(r.task_id, []).append(r.input)
    return {t: set_diversity(texts, memory.embed(texts)) for t, texts in by_task.items()}


def _child(args: tuple[str, list[bytes], BenchSettings, str]) -> dict[str, Any]:
    name, messages, settings, state_dir = args
    return run_strategy(name, messages, settings, Path(state_dir))


def run_bench(messages: Sequence[bytes], strategies: Sequence[str], settings: BenchSettings,
              workdir: Path | None = None) -> dict[str, Any]:
    """Run each strategy in a fresh process, one after another; summarise them all."""
    for name in strategies:
        strategy_config(name, settings, Path("unused"))  # fail early on a bad name or config
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="synlearner-bench-"))
    runs = []
    ctx = multiprocessing.get_context("spawn")
    for name in strategies:
        log.info("bench: %s", name)
        state_dir = root / name
        with ctx.Pool(1) as pool:
            run = pool.apply(_child, ((name, list(messages), settings, str(state_dir)),))
        if run["state"] is None:
            raise RuntimeError(f"bench: strategy {name} learned nothing (see the log)")
        runs.append(run)
        log.info("bench: %s done in %.1f s", name, run["seconds"])
    return summarise(runs, settings)


# -- summaries -------------------------------------------------------------------------
def _metrics(matrix: list[list[float | None]], zero: list[float], joint: bool) -> dict[str, Any]:
    if not matrix:
        return {}
    m: dict[str, float | None] = dict(transfer_metrics(matrix, zero).as_dict())
    if joint:  # one learning event: nothing before or after to compare
        m.update(bwt=None, fwt=None, forgetting=None)
    return m


def _figures(entry: dict[str, Any], method: str) -> dict[str, Any]:
    """A committed entry's figures of one learning method (or a synthesis task's own)."""
    return dict((entry.get("extras") or {}).get(method) or {})


def _rounds(entry: dict[str, Any]) -> list[dict[str, float]]:
    return list(_figures(entry, "self_train").get("rounds") or [])


def _sampling(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What a generation strategy sampled: answers generated (self-training's, its search's
    and the preference phase's candidates), pass@K and the balance score per round, and the
    preference pairs by source."""
    rounds = [r for e in entries for r in _rounds(e)]
    prefs = [_figures(e, "preference") for e in entries if _figures(e, "preference")]
    if not rounds and not prefs:
        return {}
    pairs: dict[str, float] = {}
    for p in prefs:
        for key, value in p.items():
            if key.startswith("pairs"):
                pairs[key] = pairs.get(key, 0.0) + value
    return {
        "samples_generated": int(sum(r["samples"] for r in rounds)
                                 + sum(p.get("candidates", 0) for p in prefs)),
        "pass_at_k": (sum(r["pass_at_k"] for r in rounds) / len(rounds)) if rounds else None,
        "balance_by_round": [[e["task_id"], int(r["round"]), r["balance"]]
                             for e in entries for r in _rounds(e)],
        "preference_pairs": pairs,
    }


def steps_to_reach(curve: list[list[float]], target: float) -> int | None:
    """The first recorded step whose eval accuracy reaches `target` (None: never)."""
    for step, acc in curve:
        if acc >= target - 1e-9:
            return int(step)
    return None


def summarise(runs: list[dict[str, Any]], settings: BenchSettings) -> dict[str, Any]:
    targets = {}
    per_task_run = next((r for r in runs if r["strategy"] == "per-task"), None)
    if per_task_run:
        targets = {e["task_id"]: e["final"] for e in per_task_run["state"]["entries"]}
    out = []
    for run in runs:
        st = run["state"]
        entries = st["entries"]
        joint = run["adapters"] == "joint"
        zero = [e["zero_shot"] for e in entries]
        agnostic = st.get("agnostic") or []
        reach = {e["task_id"]: steps_to_reach(e.get("curve") or [], targets[e["task_id"]])
                 for e in entries if e["task_id"] in targets and e.get("curve")}
        out.append({
            "strategy": run["strategy"], "overrides": run["overrides"],
            "columns": [e["column"] for e in entries], "matrix": st["matrix"],
            "agnostic_matrix": agnostic,
            "task_aware": _metrics(st["matrix"], zero, joint),
            "task_agnostic": _metrics(agnostic, zero, joint)
            if len(agnostic) == len(entries) and any(v is not None for row in agnostic for v in row)
            else {},  # not scored (`learner.task_agnostic: false`, or not every event)
            "seconds": run["seconds"], "seconds_per_task": run["seconds"] / max(1, len(entries)),
            "peak_rss_mib": run["peak_rss_mib"],
            "steps_per_task": settings.steps, "steps_to_per_task_final": reach,
            "tasks": [{**{k: e.get(k) for k in ("task_id", "zero_shot", "initial", "final",
                                                    "init_from", "probe", "curve", "steps")},
                       "rounds": _rounds(e), "preference": _figures(e, "preference")}
                      for e in entries],
            **_sampling(entries),
        })
        if settings.kind == "synthesis":
            out[-1].update(_synthesis(run, asked(runs)))
    return {"settings": {"steps": settings.steps, "curve_every": settings.curve_every,
                         "seed": settings.seed}, "strategies": out,
            "similarity": task_similarity(runs)}


def asked(runs: list[dict[str, Any]]) -> list[str]:
    """The classification tasks of a synthesis stream that ask for synthetic data."""
    return list(dict.fromkeys(e["task_id"] for r in runs for e in r["state"]["entries"]
                              if "generated" in _figures(e, "synthesis")))


def _synthesis(run: dict[str, Any], few: list[str]) -> dict[str, Any]:
    """A synthesis stream's comparison: the accuracy of the classification tasks that ask
    for synthetic data (their last-row score; `task_aware.acc` is their mean) and, per task,
    what was written and kept; the synthesis tasks' own figures."""
    st = run["state"]
    entries, last = st["entries"], st["matrix"][-1] if st["matrix"] else []
    column = {e["task_id"]: i for i, e in enumerate(entries)}
    tasks = []
    for task_id in few:
        e = next(x for x in entries if x["task_id"] == task_id)
        tasks.append({"task_id": task_id, "accuracy": last[column[task_id]],
                      **_figures(e, "synthesis"),
                      **{f"kept_{k}": v for k, v in (run.get("synthetic") or {}).get(
                          task_id, {}).items()}})
    scores = [t["accuracy"] for t in tasks if t["accuracy"] is not None]
    writers = [{"task_id": e["task_id"], "final": e["final"], **_figures(e, "grpo"),
                **_figures(e, "synthesis")} for e in entries if e["kind"] == "synthesis"]
    return {"task_aware": {"acc": sum(scores) / len(scores) if scores else None, "bwt": None,
                           "fwt": None, "forgetting": None},
            "classification": tasks, "writers": writers}


def task_similarity(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The memory's task similarity (`memory.similarity`) of every task pair, and each
    task's nearest earlier task in the stream (the one it could start from)."""
    sim: dict[str, Any] = next((r["similarity"] for r in runs
                                if r.get("similarity", {}).get("tasks")),
                               {"tasks": [], "matrix": []})
    order = [e["task_id"] for e in runs[0]["state"]["entries"]] if runs else []
    index = {t: i for i, t in enumerate(sim["tasks"])}
    nearest: dict[str, Any] = {}
    for k, task in enumerate(order):
        earlier = [(t, sim["matrix"][index[task]][index[t]]) for t in order[:k]
                   if task in index and t in index]
        if earlier:
            nearest[task] = max(earlier, key=lambda x: x[1])
    return {**sim, "nearest_earlier": nearest}
