"""Each bench strategy's mechanics, on the real loop with the `CentroidLearner` double."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from synlearner.bench.compare import (
    GENERATION_STRATEGIES,
    STRATEGIES,
    BenchSettings,
    strategy_config,
)
from synlearner.daemon.agnostic import (
    TaskAgnostic,
    answering_adapter,
    consolidated_dir,
    merge_method,
)
from synlearner.daemon.config import ConfigError
from synlearner.daemon.loop import Daemon
from synlearner.daemon.state import State
from synlearner.learner.base import SHARED, consolidated_key
from synlearner.stream import InMemorySource
from synlearner.stream.schema import Example, Task
from tests.conftest import raw
from tests.unit.doubles import CentroidLearner, unit_config, unit_daemon

MERGED = consolidated_key("classification")


def sentiment(task_id: str, words: tuple[str, str]) -> bytes:
    pos, neg = words
    train = [{"input": f"{pos} lovely {i}", "output": "positive"} for i in range(3)]
    train += [{"input": f"{neg} awful {i}", "output": "negative"} for i in range(3)]
    evals = [{"input": f"{pos} lovely", "output": "positive"},
             {"input": f"{neg} awful", "output": "negative"}]
    return raw(task_id, train=train, eval=evals)


def topics(task_id: str) -> bytes:
    train = [{"input": f"match goal striker {i}", "output": "sports"} for i in range(3)]
    train += [{"input": f"vote senate bill {i}", "output": "politics"} for i in range(3)]
    evals = [{"input": "goal striker", "output": "sports"},
             {"input": "senate vote", "output": "politics"}]
    return raw(task_id, labels=["sports", "politics"], train=train, eval=evals)


STREAM = [sentiment("food", ("tasty", "cold")), topics("news"),
          sentiment("hotel", ("tasty", "dirty"))]


def run(tmp_path: Path, name: str, steps: int = 7, learner: CentroidLearner | None = None,
        task_agnostic: bool = True, consolidate: str | None = None) -> tuple[Daemon, CentroidLearner]:
    settings = BenchSettings(steps=steps, curve_every=0,
                             overrides={"learner.consolidate": consolidate} if consolidate else {})
    cfg = strategy_config(name, settings, tmp_path)
    cfg = cfg.model_copy(update={"learner": cfg.learner.model_copy(
        update={"task_agnostic": task_agnostic})})
    assert cfg.daemon.drain
    learner = learner or CentroidLearner()
    source = InMemorySource(list(STREAM))
    daemon = unit_daemon(cfg, source, learner)
    daemon.run()
    assert len(source.acked) == len(STREAM)
    statuses = [r.status for r in daemon.results.results]  # type: ignore[attr-defined]
    assert statuses == ["learned"] * len(STREAM)
    return daemon, learner


def test_every_strategy_is_a_config_of_the_same_daemon(tmp_path: Path) -> None:
    cfgs = {name: strategy_config(name, BenchSettings(steps=5), tmp_path) for name in STRATEGIES}
    learner = {name: c.learner for name, c in cfgs.items()}
    replay = {name: c.memory.replay for name, c in cfgs.items()}
    assert {lc.train.steps for lc in learner.values()} == {5}
    assert [learner[n].adapters for n in STRATEGIES] == [
        "shared", "shared", "per-task", "joint", "per-task"]
    assert replay["seq-lora"].ratio == 0 and replay["replay"].ratio > 0
    assert replay["replay"].policy == "reservoir"
    syn = learner["synlearner"]
    assert (syn.init, replay["synlearner"].policy, syn.consolidate) == (
        "nearest", "errors_first", "none")
    assert syn.init_probe_steps > 0
    assert learner["per-task"].init == "fresh" and learner["per-task"].consolidate == "none"
    with pytest.raises(ConfigError, match="unknown strategy 'ewc'"):
        strategy_config("ewc", BenchSettings(), tmp_path)


def test_generation_strategies_split_one_budget_of_steps_between_their_phases(
        tmp_path: Path) -> None:
    settings = BenchSettings(steps=24, kind="generation")
    cfgs = {n: strategy_config(n, settings, tmp_path) for n in GENERATION_STRATEGIES}
    spent = {}
    for name, c in cfgs.items():
        g = c.learner.generation
        spent[name] = (c.learner.train.steps
                       + (g.self_train.rounds * g.self_train.steps if "self_train" in g.methods else 0)
                       + (g.preference.steps if "preference" in g.methods else 0))
        assert c.learner.task_agnostic is False and c.learner.adapters == "per-task"
    assert spent == dict.fromkeys(GENERATION_STRATEGIES, 24)
    phases = {n: cfgs[n].learner.generation.methods for n in GENERATION_STRATEGIES}
    assert phases["sft"] == ("sft",) and phases["synlearner"] == ("sft", "self_train", "preference")
    st = {n: cfgs[n].learner.generation.self_train for n in ("self-train-fixed", "self-train-balanced")}
    assert (st["self-train-fixed"].search, st["self-train-fixed"].temperature,
            st["self-train-fixed"].tau) == ("fixed", 0.7, 0.5)  # B-STaR's 0 on [-1, 1]
    assert st["self-train-balanced"].search == "balanced"
    assert cfgs["dpo-errors"].learner.generation.preference.negatives == [
        "own", "neighbour", "candidate"]
    assert cfgs["dpo-template"].learner.generation.preference.negatives == ["candidate", "template"]
    with pytest.raises(ConfigError, match="unknown strategy 'seq-lora' for a generation stream"):
        strategy_config("seq-lora", settings, tmp_path)


def test_seq_lora_trains_one_adapter_without_replay(tmp_path: Path) -> None:
    daemon, learner = run(tmp_path, "seq-lora")
    assert [(p.adapter, p.resume, p.init_from, p.steps) for p in learner.plans] == [
        (SHARED, True, None, 7)] * 3
    state = daemon.state
    assert [e.replay_examples for e in state.entries] == [0, 0, 0]
    assert {e.adapter_key for e in state.entries} == {SHARED}
    assert state.agnostic == state.matrix  # one adapter: the same answer with or without task id
    assert learner.merges == []


def test_replay_recalls_a_sample_of_the_past(tmp_path: Path) -> None:
    daemon, learner = run(tmp_path, "replay")
    assert {p.adapter for p in learner.plans} == {SHARED}
    assert [e.replay_examples > 0 for e in daemon.state.entries] == [False, True, True]


def test_per_task_starts_fresh_and_routes_without_a_task_id(tmp_path: Path) -> None:
    daemon, learner = run(tmp_path, "per-task")
    assert [(p.adapter, p.init_from) for p in learner.plans] == [
        ("food", None), ("news", None), ("hotel", None)]
    assert learner.merges == [] and not learner.has_adapter(MERGED)
    state = daemon.state
    assert [len(r) for r in state.agnostic] == [2, 3, 3]
    # routing by task centroid sends each eval input to its own task's adapter here
    assert state.agnostic[-1] == state.matrix[-1] == [1.0, 1.0, 1.0]


def test_multitask_learns_once_from_the_whole_stream(tmp_path: Path) -> None:
    daemon, learner = run(tmp_path, "multitask", steps=7)
    assert len(learner.plans) == 1
    plan = learner.plans[0]
    assert (plan.adapter, plan.steps) == (SHARED, 7 * 3)
    state = daemon.state
    assert [e.task_id for e in state.entries] == ["food", "news", "hotel"]
    assert len(state.matrix) == 3 and state.matrix[0] == state.matrix[2]
    assert daemon.memory.counts()["experience"] == 18


def test_synlearner_transfers_checks_and_routes_without_a_task_id(tmp_path: Path) -> None:
    daemon, learner = run(tmp_path, "synlearner")
    assert learner.merges == [] and not (tmp_path / "adapters" / MERGED).exists()
    state = daemon.state
    assert state.entries[2].init_from == "food"  # the nearest past task
    agnostic = state.agnostic_metrics()
    assert agnostic is not None and len(state.agnostic) == 3
    # each eval input is scored with the adapter of the task whose inputs it is nearest:
    # news' inputs go to news' adapter once it is learned (before, food's was all there was),
    # the sentiment tasks' never to news'
    assert learner.evaluations.count(("news", "food")) == 1
    assert not set(learner.evaluations) & {("news", "hotel"), ("food", "news"), ("hotel", "news")}
    # every news input goes to news' adapter: its task-aware score is its task-agnostic one
    # (measured once, for both matrices, in two rows)
    assert learner.evaluations.count(("news", "news")) == 1
    assert [row[1] for row in state.agnostic[1:]] == [row[1] for row in state.matrix[1:]]


def test_synlearner_consolidates_when_configured_to(tmp_path: Path) -> None:
    daemon, learner = run(tmp_path, "synlearner", consolidate="ties")
    plans = {p.adapter: p for p in learner.plans}
    assert plans["hotel"].init_from == "food"  # the nearest past task
    assert plans["hotel"].probe_steps > 0 and plans["food"].init_from is None
    assert [m[0] for m in learner.merges] == [("food",), ("food", "news"), ("food", "news", "hotel")]
    assert {m[2] for m in learner.merges} == {"ties"}
    state = daemon.state
    assert state.entries[2].probe is not None and state.entries[2].probe["candidate"] == "food"
    agnostic = state.agnostic_metrics()
    assert agnostic is not None and len(state.agnostic) == 3
    gauge = daemon.metrics.task_agnostic.labels(metric="acc")._value.get()
    assert gauge == pytest.approx(agnostic.acc)
    merged = consolidated_dir(state, "classification")  # the folder of the last commit's merge
    assert merged.parent == tmp_path / "adapters" / MERGED
    assert (merged / "centroids.json").exists()
    news = state.latest("news")
    assert news is not None
    assert answering_adapter(state, news, "ties") == (MERGED, merged)
    # a config that routes answers with the task's own adapter, whatever merge is on disk
    assert answering_adapter(state, news, "none") == ("news", tmp_path / news.adapter)


def test_by_default_the_task_agnostic_merge_waits_for_an_idle_stream(tmp_path: Path) -> None:
    cfg = unit_config(tmp_path, **{"daemon.drain": True, "learner.consolidate": "ties"})
    assert cfg.learner.consolidate_every == 0
    learner = CentroidLearner()
    daemon = unit_daemon(cfg, InMemorySource(list(STREAM)), learner)
    daemon.run()
    assert [m[0] for m in learner.merges] == [("food", "news", "hotel")]  # once, when drained
    state = daemon.state
    assert [any(v is not None for v in row) for row in state.agnostic] == [False, False, True]
    agnostic = state.agnostic_metrics()
    assert agnostic is not None and agnostic.tasks == 3
    assert agnostic.acc == pytest.approx(sum(state.agnostic[-1]) / 3)  # type: ignore[arg-type]
    assert agnostic.bwt == 0.0  # nothing measured earlier to compare with
    assert consolidated_dir(state, "classification").name == "000003"
    reopened = State.load(tmp_path)
    assert reopened.agnostic == state.agnostic and reopened.agnostic_measured()


def test_restart_restores_shared_and_consolidated_adapters(tmp_path: Path) -> None:
    daemon, first_learner = run(tmp_path, "synlearner", consolidate="ties")
    daemon.memory.close()
    cfg = strategy_config("synlearner", BenchSettings(
        steps=7, overrides={"learner.consolidate": "ties"}), tmp_path)
    learner = CentroidLearner()
    again = unit_daemon(cfg, InMemorySource(), learner)
    assert learner.has_adapter("hotel") and learner.has_adapter(MERGED)
    # the committed merge of food, news and hotel is loaded as it was saved, not merged again
    assert first_learner.merges[-1][0] == ("food", "news", "hotel") and learner.merges == []
    assert learner.adapters[MERGED] == first_learner.adapters[MERGED]
    again.memory.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # as state dirs written before
        db.execute("DELETE FROM consolidated")
    shutil.rmtree(tmp_path / "adapters" / MERGED)
    learner = CentroidLearner()  # no consolidated adapter on disk: merged from the task adapters
    unit_daemon(cfg, InMemorySource(), learner).memory.close()
    assert learner.merges[-1][0] == ("food", "news", "hotel")

    shared_dir = tmp_path / "shared"
    first, _ = run(shared_dir, "seq-lora")
    first.memory.close()
    learner = CentroidLearner()
    unit_daemon(unit_config(shared_dir, **{"learner.adapters": "shared"}), InMemorySource(),
                learner)
    assert set(learner.adapters) == {SHARED}


def test_state_without_agnostic_matrix_still_loads(tmp_path: Path) -> None:
    daemon, _ = run(tmp_path, "per-task")
    daemon.state.close()
    body: dict[str, Any] = State.read(tmp_path).as_dict()
    del body["agnostic"]
    for e in body["entries"]:
        for key in ("adapter_key", "probe", "curve"):
            del e[key]
    for path in tmp_path.glob("state.sqlite3*"):  # a state dir of an older version
        path.unlink()
    (tmp_path / "state.json").write_text(json.dumps(body))
    state = State.load(tmp_path)  # imports state.json once
    assert (tmp_path / "state.json.imported").exists() and not (tmp_path / "state.json").exists()
    assert State.read(tmp_path).as_dict() == state.as_dict()
    assert state.agnostic == [[None] * len(r) for r in state.matrix]
    assert state.agnostic_metrics() is None
    assert state.metrics().tasks == 3


def test_a_better_later_adapter_answers_for_its_lineage(tmp_path: Path) -> None:
    learner = CentroidLearner()
    learner.confused = {"food"}  # food's own adapter answers every example wrong
    daemon, _ = run(tmp_path, "synlearner", learner=learner, consolidate="ties")
    state = daemon.state
    assert state.entries[2].init_from == "food"
    assert state.answers == {"food": "hotel"}  # hotel's adapter does better on food's train data
    assert state.matrix[1][0] == 0.0 and state.matrix[2][0] == 1.0  # backward transfer
    assert state.metrics().bwt == pytest.approx(0.5)
    assert learner.merges[-1][0] == ("hotel", "news")  # the answering adapters, once each
    assert State.load(tmp_path).answer_key("food") == "hotel"


def test_unchanged_adapters_are_not_evaluated_again(tmp_path: Path) -> None:
    # (the task-agnostic row, off here, scores with the adapter each input is routed to)
    _, learner = run(tmp_path, "per-task", task_agnostic=False)
    aware = [e for e in learner.evaluations if e[1] is not None and e[0] == e[1]]
    assert aware.count(("food", "food")) == 1  # scored once, reused in later rows
    _, shared = run(tmp_path / "shared", "seq-lora")
    assert shared.evaluations.count(("food", SHARED)) == 3  # a shared adapter changes every task


def test_a_failing_idle_merge_is_logged_and_not_retried_until_the_next_task(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenMerge(CentroidLearner):
        def merge(self, sources: Sequence[str], name: str, method: str) -> None:
            self.merges.append((tuple(sources), name, method))
            raise RuntimeError("merge: out of luck")

    learner = BrokenMerge()
    source = InMemorySource(list(STREAM[:1]))
    cfg = unit_config(tmp_path, **{"daemon.drain": False, "learner.consolidate": "ties"})
    daemon = unit_daemon(cfg, source, learner)
    for _ in range(3):  # three idle polls after the task: one attempt
        delivery = daemon._next()
        if delivery is not None:
            daemon.handle(delivery)
        daemon._idle()
    assert len(learner.merges) == 1 and "idle: the task-agnostic merge failed" in caplog.text
    source.submit(STREAM[1], "")
    daemon.handle(daemon._next())  # type: ignore[arg-type]
    daemon._idle()
    assert len(learner.merges) == 2 and not daemon.state.agnostic_measured()


class _Routes:
    """A memory that routes an input "task:n" to task `task` ("none:n": to no task)."""

    def route(self, texts: Sequence[str]) -> list[str | None]:
        return [None if t.startswith("none:") else t.split(":")[0] for t in texts]


class _Scorer:
    """A learner whose adapter `key` answers `key`; it records what it scored with what."""

    def __init__(self) -> None:
        self.scored: list[tuple[str, str | None, int]] = []

    def has_adapter(self, key: str) -> bool:
        return key in {"a", "b", "c"}

    def evaluate(self, task: Task, key: str | None) -> float:
        self.scored.append((task.task_id, key, len(task.eval)))
        return sum(e.output == key for e in task.eval) / len(task.eval)


def test_routed_scores_are_taken_adapter_by_adapter_across_tasks() -> None:
    def task(task_id: str, rows: list[tuple[str, str]]) -> Task:
        examples = tuple(Example(i, o) for i, o in rows)
        return Task(task_id, "classification", "", ("a", "b", "c", "x"), examples, examples)

    tasks = {
        "a": task("a", [("a:1", "a"), ("b:1", "a"), ("a:2", "a"), ("none:1", "x")]),
        "b": task("b", [("b:1", "b"), ("b:2", "b")]),  # all its own: the known score
        "c": task("c", [("b:3", "x"), ("c:1", "c"), ("a:3", "a")]),
    }
    learner = _Scorer()
    agnostic = TaskAgnostic("none", _Routes(), {"classification": learner},  # type: ignore[arg-type]
                            None, key_of=lambda t: t,  # type: ignore[arg-type]
                            known=lambda t, key: 0.25 if (t, key) == ("b", "b") else None)
    loaded: list[str] = []
    beats: list[str] = []

    def load(task_id: str) -> Task:
        loaded.append(task_id)
        return tasks[task_id]

    scores = agnostic.score_all(["a", "b", "c"], load, beats.append)
    # a: 2 of its 4 inputs went to a and are right, b's adapter and the base model get the rest
    assert scores == pytest.approx({"a": 0.5, "b": 0.25, "c": 2 / 3})
    keys = [key for _, key, _ in learner.scored]
    assert keys == ["a", "a", "b", "b", None, "c"]  # each adapter once, in one run
    assert learner.scored == [("a", "a", 2), ("c", "a", 1), ("a", "b", 1), ("c", "b", 1),
                              ("a", None, 1), ("c", "c", 1)]
    assert set(beats) == {"a", "b", "c"} and len(beats) == 3 + len(learner.scored)
    assert loaded.count("b") == 1  # its known score: read once, to route it
    assert agnostic.score(tasks["c"]) == pytest.approx(2 / 3)


def test_only_per_task_adapters_are_merged_to_answer_without_a_task_id(tmp_path: Path) -> None:
    def learner(adapters: str, consolidate: str) -> Any:
        cfg = unit_config(tmp_path, **{"learner.adapters": adapters,
                                       "learner.consolidate": consolidate})
        return cfg.learner

    assert merge_method(learner("per-task", "ties")) == "ties"
    assert merge_method(learner("per-task", "none")) == "none"
    assert merge_method(learner("shared", "ties")) == "none"  # one adapter answers anyway
