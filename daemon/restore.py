"""Start-up recovery of a state directory: finish or drop a commit a crash interrupted, put
back an adapter folder a cut save moved aside, and load the committed adapters (a missing
one is noted, never the end of the start)."""

from __future__ import annotations

import logging

from synlearner.daemon.phases import separate_agnostic
from synlearner.daemon.runner import Context
from synlearner.learner.base import Learner, consolidated_key
from synlearner.memory.base import PENDING, pending_id
from synlearner.stream.io import recover_dir
from synlearner.stream.schema import Task

log = logging.getLogger("synlearner.daemon")


def restore(ctx: Context) -> None:
    """On start: finish or drop versions that were mid-commit (pending memory records of the
    committed version take the task's id, the rest are dropped), then load the latest
    adapter of every key and the committed consolidated adapters."""
    for pid in ctx.memory.task_ids():
        if PENDING not in pid:
            continue
        task_id, content_hash = pid.split(PENDING, 1)
        entry = ctx.state.latest(task_id)
        if entry is not None and entry.content_hash == content_hash:
            log.info("memory: finishing the commit of %s", task_id)
            ctx.memory.adopt(pid, task_id)
        else:
            ctx.memory.forget_task(pid)
    ctx.memory.flush()
    loaded: set[str] = set()
    ctx.missing.clear()
    for entry in reversed(ctx.state.entries):  # the latest adapter of each key
        key = entry.adapter_key or entry.task_id
        learner = ctx.learners.get(entry.kind)
        if key in loaded or learner is None:
            continue
        loaded.add(key)
        path = ctx.state.root / entry.adapter
        if recover_dir(path):
            log.warning("adapter %s: put %s back (its save was cut short)", key, entry.adapter)
        try:
            learner.load_adapter(key, path)
        except FileNotFoundError:  # removed by hand, or a disk that lost it: start without it
            ctx.missing.add(key)
            log.error("adapter %s: %s is missing; the tasks it answers are scored with the base "
                      "model until they are learned again (a task sent again is relearned, "
                      "not acknowledged as a duplicate)", key, entry.adapter)
    if separate_agnostic(ctx):
        ctx.agnostic.restore()


def restore_committed(ctx: Context, task: Task) -> None:
    """After a failed attempt, undo what it changed outside the state, which it never
    reached: its pending memory records, the scores measured with its adapter, the adapters
    in memory it trained or merged (each goes back to its latest committed version, or is
    forgotten where none was committed), and the files it wrote (`State.prune`)."""
    ctx.current = None
    try:
        ctx.memory.forget_task(pending_id(task.task_id, task.content_hash))
    except Exception:  # noqa: BLE001  # dropped on the next start or the next attempt
        log.exception("task %s: could not drop the failed attempt's memory records",
                      task.task_id)
    key = ctx.strategy.adapter_key(task.task_id)
    ctx.scores = {k: v for k, v in ctx.scores.items() if k[1] != key}
    learner = ctx.learners.get(task.kind)
    try:
        if learner is not None:
            _reload(learner, key, ctx)
        if separate_agnostic(ctx):
            for kind, other in ctx.learners.items():
                if kind not in ctx.state.consolidated:  # a merge the attempt made, uncommitted
                    other.drop_adapter(consolidated_key(kind))
            ctx.agnostic.restore()
        ctx.state.prune()
    except Exception:  # noqa: BLE001  # best effort: the next start loads them again
        log.exception("task %s: could not reload the committed adapters", task.task_id)


def _reload(learner: Learner, key: str, ctx: Context) -> None:
    """Adapter `key` as its latest committed entry saved it, or gone where none did."""
    entry = next((e for e in reversed(ctx.state.entries)
                  if (e.adapter_key or e.task_id) == key), None)
    if entry is None:
        learner.drop_adapter(key)
    else:
        learner.load_adapter(key, ctx.state.root / entry.adapter)
