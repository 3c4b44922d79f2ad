"""A long stream of small tasks: what the daemon keeps and writes per task stays bounded."""

from __future__ import annotations

from pathlib import Path

from synlearner.daemon.metrics import MAX_TASK_LABELS
from synlearner.stream.inmemory import InMemorySource
from tests.conftest import raw
from tests.unit.doubles import CentroidLearner, unit_config, unit_daemon

TASKS = 300


def small_task(i: int) -> bytes:
    words = [f"w{i}a", f"w{i}b"]
    train = [{"input": f"{words[k % 2]} item {k}", "output": ["yes", "no"][k % 2]} for k in range(4)]
    evals = [{"input": f"{words[k % 2]} item", "output": ["yes", "no"][k % 2]} for k in range(2)]
    return raw(f"t{i:04d}", labels=["yes", "no"], train=train, eval=evals)


def test_a_long_stream_writes_and_exports_a_bounded_amount_per_task(tmp_path: Path) -> None:
    cfg = unit_config(tmp_path, **{"memory.replay.ratio": 0.0, "learner.init": "fresh",
                                   "learner.consolidate": "ties"})
    source = InMemorySource([small_task(i) for i in range(TASKS)])
    learner = CentroidLearner()
    daemon = unit_daemon(cfg, source, learner)
    db = daemon.state.db
    assert db is not None
    changes: list[int] = []
    before = db.total_changes
    while (delivery := source.poll(0.0)) is not None:
        daemon.handle(delivery)
        changes.append(db.total_changes - before)
        before = db.total_changes
    assert len(daemon.state.entries) == TASKS
    # a commit writes its entry and its matrix rows: O(tasks), not the N x N matrices
    assert all(c <= 2 * (k + 2) + 8 for k, c in enumerate(changes)), changes[-5:]
    assert learner.merges == []  # the task-agnostic merge waits for an idle stream
    daemon.run()  # the stream is idle now: merged once, every task scored without its id
    assert len(learner.merges) == 1 and len(learner.merges[0][0]) == TASKS
    series = [s for m in daemon.metrics.task_accuracy.collect() for s in m.samples]
    assert len(series) == MAX_TASK_LABELS
