"""Scheduled upkeep: each job is queued by the scheduler thread and run by the main loop
between tasks (never on the scheduler's thread, which must not touch the models).

    drift       re-evaluate every learned task with the adapter that answers for it and
                compare with its recorded score (idle only)
    retention   adapter folders beyond `adapter_versions` per key, spool `done/` messages
                older than `done_max_age_s`, `results.jsonl` past `max_results_bytes`
    compaction  the memory's duplicate records and free pages (idle only)

Each returns a one-line summary for the log and `/status`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from synlearner.daemon.metrics import Metrics
from synlearner.daemon.runner import Context
from synlearner.daemon.settle import Stopped
from synlearner.stream import spool
from synlearner.stream.boundary import describe

log = logging.getLogger("synlearner.daemon")

IDLE_ONLY = frozenset({"drift", "compaction"})


def drift(ctx: Context) -> str:
    """Scores move without training when something under the daemon changed (the base
    model's files, a library's numerics, an adapter edited on disk): re-score every task
    and export the largest drop below its score in the latest row of the matrix."""
    recorded = ctx.state.latest_scores()
    tolerance = ctx.cfg.daemon.jobs.drift_tolerance
    drops: dict[str, float] = {}
    for task_id in ctx.state.task_ids():
        entry = ctx.state.latest(task_id)
        learner = ctx.learners.get(entry.kind) if entry else None
        if entry is None or learner is None or entry.column not in recorded:
            continue
        ctx.beat("drift", task_id)
        key = ctx.answer_key(task_id)
        score = learner.evaluate(ctx.state.load_task(task_id),
                                 key if learner.has_adapter(key) else None)
        drops[task_id] = recorded[entry.column] - score
        if abs(drops[task_id]) > tolerance:
            log.warning("drift: task %s scores %.3f, recorded %.3f (adapter %s)", task_id, score,
                        recorded[entry.column], key)
    worst = max(drops.values(), default=0.0)
    ctx.metrics.drift.set(max(0.0, worst))
    moved = sum(abs(d) > tolerance for d in drops.values())
    return f"{len(drops)} tasks re-evaluated, {moved} moved over {tolerance}, largest drop {worst:+.3f}"


def retention(ctx: Context) -> str:
    jobs = ctx.cfg.daemon.jobs
    ctx.state.keep_versions = jobs.adapter_versions
    removed = ctx.state.prune()
    out = f"{removed} adapter folders removed (keeping {jobs.adapter_versions} per key)"
    if ctx.cfg.stream.kind == "spool":
        root = ctx.cfg.spool_dir
        expired = spool.expire_done(root, jobs.done_max_age_s) if jobs.done_max_age_s else 0
        rotated = bool(jobs.max_results_bytes) and spool.rotate_results(
            root / "results.jsonl", jobs.max_results_bytes)
        out += f", {expired} done messages expired" + (", results.jsonl rotated" if rotated else "")
    return out


def compaction(ctx: Context) -> str:
    done = ctx.memory.compact()
    return (f"memory: {done['duplicates']} duplicate records dropped, "
            f"{done['freed_bytes'] / 1e6:.1f} MB freed")


JOBS: dict[str, Callable[[Context], str]] = {
    "drift": drift, "retention": retention, "compaction": compaction}


def intervals(ctx: Context) -> dict[str, float]:
    """Each job's interval in seconds (0: off)."""
    jobs = ctx.cfg.daemon.jobs
    return {"drift": jobs.drift_every_s, "retention": jobs.retention_every_s,
            "compaction": jobs.compaction_every_s}


def run_job(name: str, ctx: Context, metrics: Metrics) -> dict[str, Any]:
    """Run one job and return its outcome for `/status`; a failure is logged and counted,
    never raised (a stop ends the job, which runs again at its next time)."""
    started, outcome = time.perf_counter(), "ok"
    metrics.job_runs.labels(name=name).inc()
    try:
        summary = JOBS[name](ctx)
        log.info("job %s: %s", name, summary)
    except Stopped:
        outcome = summary = "stopped"
        log.info("job %s: stopped; it runs again at its next time", name)
    except Exception as exc:  # noqa: BLE001  # upkeep never stops the stream
        outcome, summary = "failed", describe(exc)
        metrics.job_failures.labels(name=name).inc()
        log.exception("job %s: failed", name)
    spent = time.perf_counter() - started
    metrics.job_duration.labels(name=name).set(spent)
    metrics.job_last_run.labels(name=name).set(time.time())
    return {"outcome": outcome, "summary": summary, "seconds": round(spent, 3),
            "finished_at": time.time()}
