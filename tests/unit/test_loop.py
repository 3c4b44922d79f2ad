"""The main loop's bookkeeping, with the numpy `CentroidLearner` double."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from synlearner.daemon.loop import Daemon, Stopped
from synlearner.daemon.state import State
from synlearner.learner.base import (
    Learner,
    LearnOutcome,
    LearnPlan,
    Progress,
    no_progress,
)
from synlearner.memory import ReplayItem
from synlearner.stream import InMemorySource, Task
from tests.conftest import raw
from tests.unit.doubles import CentroidLearner, unit_config, unit_daemon


def build(tmp_path: Path, source: InMemorySource, learner: CentroidLearner) -> Daemon:
    return unit_daemon(unit_config(tmp_path, **{"memory.replay.ratio": 1.0}), source, learner)


def task_raw(task_id: str, flip: bool = False) -> bytes:
    pos, neg = ("positive", "negative") if not flip else ("negative", "positive")
    train = [{"input": f"great tasty lovely {i}", "output": pos} for i in range(3)]
    train += [{"input": f"awful cold sour {i}", "output": neg} for i in range(3)]
    evals = [{"input": "great lovely", "output": pos}, {"input": "awful sour", "output": neg}]
    return raw(task_id, train=train, eval=evals)


def test_learns_each_task_and_keeps_the_matrix(tmp_path: Path) -> None:
    learner = CentroidLearner()
    source = InMemorySource([task_raw("a"), task_raw("b"), b"not json", task_raw("c")])
    daemon = build(tmp_path, source, learner)
    daemon.run()
    assert learner.trained == ["a", "b", "c"]
    assert len(source.acked) == 3 and source.dead_letters[0][1].startswith("message: not valid")
    statuses = [(r.task_id, r.status) for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == [("a", "learned"), ("b", "learned"), ("", "invalid"), ("c", "learned")]
    state = State.load(tmp_path)
    assert [e.column for e in state.entries] == ["a", "b", "c"]
    assert [len(r) for r in state.matrix] == [2, 3, 3] and state.matrix[-1] == [1.0, 1.0, 1.0]
    assert state.entries[1].init_from == "a"  # nearest similar past task
    assert state.entries[1].replay_examples > 0
    # each learning event writes its own folder: adapters/<key>/<event>/, tasks/<id>.v<N>.json
    assert (tmp_path / "adapters" / "c" / "000003" / "centroids.json").exists()
    assert json.loads((tmp_path / "tasks" / "b.v1.json").read_bytes())["task_id"] == "b"
    m = daemon.metrics
    assert m.tasks_learned._value.get() == 3 and m.tasks_dead_lettered._value.get() == 1


def test_redelivered_task_is_acknowledged_without_retraining(tmp_path: Path) -> None:
    learner = CentroidLearner()
    source = InMemorySource([task_raw("a"), task_raw("a")])
    daemon = build(tmp_path, source, learner)
    daemon.run()
    assert learner.trained == ["a"]
    assert [r.status for r in daemon.results.results] == ["learned", "duplicate"]  # type: ignore[attr-defined]


def test_new_content_is_a_new_version(tmp_path: Path) -> None:
    learner = CentroidLearner()
    daemon = build(tmp_path, InMemorySource([task_raw("a"), task_raw("a", flip=True)]), learner)
    daemon.run()
    state = State.load(tmp_path)
    assert [(e.column, e.version) for e in state.entries] == [("a", 1), ("a#v2", 2)]
    assert state.metrics().tasks == 2


def test_stop_mid_task_leaves_it_unacknowledged_and_restart_learns_it_once(
    tmp_path: Path,
) -> None:
    learner = CentroidLearner()
    source = InMemorySource([task_raw("a"), task_raw("b"), task_raw("c")])
    daemon = build(tmp_path, source, learner)

    def stop_during_b(phase: str, step: int, total: int, loss: float) -> None:
        raise Stopped("b")

    original = learner.learn

    def learn(task: Task, replay: Sequence[ReplayItem], plan: LearnPlan,
              progress: Progress = no_progress) -> LearnOutcome:
        return original(task, replay, plan, stop_during_b if task.task_id == "b" else progress)

    learner.learn = learn  # type: ignore[method-assign]  # interrupt task b once
    daemon.run()
    assert [d.raw for d in source.acked] == [task_raw("a")]
    assert [e.task_id for e in State.load(tmp_path).entries] == ["a"]
    daemon.memory.close()
    source.restart()
    learner2 = CentroidLearner()
    daemon2 = build(tmp_path, source, learner2)
    daemon2.run()
    assert learner2.trained == ["b", "c"] and learner2.has_adapter("a")  # a restored from disk
    assert [e.task_id for e in State.load(tmp_path).entries] == ["a", "b", "c"]
    records = daemon2.memory.records(task_id="b")  # type: ignore[attr-defined]
    assert len(records) == len({(r.input, r.kind, r.split) for r in records})  # no duplicates


def test_learner_is_a_learner() -> None:
    assert isinstance(CentroidLearner(), Learner)


def test_unknown_kind_is_dead_lettered(tmp_path: Path) -> None:
    gen = raw("g", kind="generation", labels=[], train=[{"input": "1+1", "output": "2"}],
              eval=[{"input": "2+2", "output": "4"}])
    source = InMemorySource([gen])
    build(tmp_path, source, CentroidLearner()).run()
    assert source.dead_letters[0][1] == "kind: no learner for 'generation' tasks is configured"


def test_a_task_the_learner_cannot_take_is_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    source = InMemorySource([raw("u", instruction="unlearnable"), raw("ok")])
    learner = CentroidLearner()
    build(tmp_path, source, learner).run()
    assert [(d[1]) for d in source.dead_letters] == ["instruction: this learner cannot take it"]
    assert learner.trained == ["ok"]


def test_a_synthesis_task_is_judged_by_a_learned_classification_task_with_its_labels(
        tmp_path: Path) -> None:
    """The judge a synthesis task names must be a learned classification task with the same
    labels (else a dead letter naming the field); its answering adapter is in the plan."""
    def synthesis(task_id: str, judge: str, labels: Sequence[str] = ("positive", "negative")) -> bytes:
        body = json.loads(task_raw(task_id))
        body.update(kind="synthesis", labels=list(labels), synthesis={"judge": judge})
        if "neutral" in labels:
            body["train"].append({"input": "fine", "output": "neutral"})
        return json.dumps(body).encode()

    source = InMemorySource([task_raw("reviews"), synthesis("write", "reviews"),
                             synthesis("unknown", "nope"), synthesis("self", "write"),
                             synthesis("more", "reviews", ("positive", "negative", "neutral"))])
    learner = CentroidLearner()
    unit_daemon(unit_config(tmp_path), source, learner,
                kinds=("classification", "synthesis")).run()
    assert learner.trained == ["reviews", "write"]
    assert [d[1] for d in source.dead_letters] == [
        "synthesis.judge: 'nope' is not a learned classification task",
        "synthesis.judge: 'write' is not a learned classification task",
        "synthesis.judge: 'reviews' has other labels than this task (2 labels, 2 shared)"]
    judged = learner.plans[1].judge
    assert judged is not None and judged.adapter == "reviews"
    assert judged.task.labels == ("positive", "negative") and not judged.task.train
    assert learner.plans[0].judge is None


def test_idle_drain_returns(tmp_path: Path) -> None:
    daemon = build(tmp_path, InMemorySource(), CentroidLearner())
    daemon.run()
    assert daemon.phase == "stopped" and daemon.state.entries == []


def test_a_missing_adapter_folder_does_not_stop_the_start_and_its_task_is_relearned(
        tmp_path: Path) -> None:
    import shutil

    first = CentroidLearner()
    daemon = build(tmp_path, InMemorySource([task_raw("a"), task_raw("b")]), first)
    daemon.run()
    daemon.memory.close()
    shutil.rmtree(tmp_path / State.load(tmp_path).latest("a").adapter)  # an operator's rm
    learner = CentroidLearner()
    source = InMemorySource([task_raw("a"), task_raw("c")])  # "a" again, same content
    daemon = build(tmp_path, source, learner)  # starts
    assert daemon.ctx.missing == {"a"} and daemon.metrics.adapters_missing._value.get() == 1
    daemon.run()
    # "a" is learned again rather than acknowledged as a duplicate; "c"'s evaluation scores
    # nothing with the missing adapter (the base model answers for "a" until it is back)
    assert learner.trained == ["a", "c"] and daemon.ctx.missing == set()
    assert [r.status for r in daemon.results.results] == ["learned", "learned"]  # type: ignore[attr-defined]
    assert State.load(tmp_path).latest("a").version == 2


def test_an_adapter_save_cut_between_its_renames_is_put_back_on_start(tmp_path: Path) -> None:
    daemon = build(tmp_path, InMemorySource([task_raw("a")]), CentroidLearner())
    daemon.run()
    daemon.memory.close()
    folder = tmp_path / State.load(tmp_path).latest("a").adapter
    folder.rename(folder.with_name(f".{folder.name}.old"))  # replace_dir's first rename only
    learner = CentroidLearner()
    daemon = build(tmp_path, InMemorySource([task_raw("a")]), learner)
    assert folder.is_dir() and daemon.ctx.missing == set() and "a" in learner.adapters
    daemon.run()
    assert learner.trained == []  # a duplicate: nothing was lost


def test_evaluation_scores_a_task_whose_adapter_is_missing_with_the_base_model(
        tmp_path: Path) -> None:
    import shutil

    daemon = build(tmp_path, InMemorySource([task_raw("a")]), CentroidLearner())
    daemon.run()
    daemon.memory.close()
    shutil.rmtree(tmp_path / State.load(tmp_path).latest("a").adapter)
    learner = CentroidLearner()
    daemon = build(tmp_path, InMemorySource([task_raw("b")]), learner)
    daemon.run()
    assert ("a", None) in learner.evaluations and ("a", "a") not in learner.evaluations
