from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from synlearner.memory import ExperienceMemory, HashingEmbedder, Record, ReplayRequest, TaskInfo

EMB = HashingEmbedder(256)


@pytest.fixture
def mem(tmp_path: Path) -> ExperienceMemory:
    m = ExperienceMemory(tmp_path, EMB)
    data = {
        "food": [f"the pasta number {i} was tasty" for i in range(20)],
        "tech": [f"the battery model {i} drains fast" for i in range(6)],
        "new": [f"the soup number {i} was tasty" for i in range(5)],
    }
    for task_id, texts in data.items():
        m.register_task(TaskInfo(task_id, "classification", "?", ("pos", "neg"), len(texts)),
                        texts)
        m.add([Record(task_id, t, "pos") for t in texts])
    m.add([Record("tech", "the battery model 0 drains fast", "neg", "error", prediction="pos",
                  correct=False)])
    return m


def req(n: int) -> ReplayRequest:
    return ReplayRequest("new", EMB.embed(["the soup was tasty", "the soup number 3 was tasty"]), n)


def test_reservoir_is_uniform_over_past_tasks_and_seeded(mem: ExperienceMemory) -> None:
    items = mem.replay("reservoir", req(10))
    assert len(items) == 10 and all(i.record.task_id != "new" for i in items)
    again = mem.replay("reservoir", req(10))
    assert [i.record.id for i in items] == [i.record.id for i in again]
    assert items[0].task.labels == ("pos", "neg")
    assert len(mem.replay("reservoir", req(1000))) == 26  # all 26 past experiences


def test_balanced_takes_equally_from_each_task(mem: ExperienceMemory) -> None:
    counts = Counter(i.record.task_id for i in mem.replay("balanced", req(8)))
    assert counts == {"food": 4, "tech": 4}
    counts = Counter(i.record.task_id for i in mem.replay("balanced", req(16)))
    assert counts == {"food": 10, "tech": 6}  # tech runs out, food fills up


def test_nearest_returns_examples_closest_to_the_new_task(mem: ExperienceMemory) -> None:
    items = mem.replay("nearest", req(5))
    assert len(items) == 5 and all(i.record.task_id == "food" for i in items)
    assert "the pasta number 3 was tasty" in {i.record.input for i in items[:2]}
    assert len({i.record.id for i in items}) == 5


def test_errors_first_puts_past_mistakes_first(mem: ExperienceMemory) -> None:
    items = mem.replay("errors_first", req(4))
    assert items[0].record.kind == "error" and items[0].record.task_id == "tech"
    assert [i.record.task_id for i in items[1:]] == ["food", "food", "food"]


def test_unknown_policy_names_the_field(mem: ExperienceMemory) -> None:
    with pytest.raises(ValueError, match="memory.replay.policy"):
        mem.replay("newest", req(3))


def test_nearest_widens_when_neighbour_lists_overlap(mem: ExperienceMemory) -> None:
    same = EMB.embed(["the soup was tasty"] * 10)  # ten identical queries: k=6 finds only 6
    items = mem.replay("nearest", ReplayRequest("new", same, 25))
    assert len(items) == 25 and len({i.record.id for i in items}) == 25


@pytest.mark.parametrize("policy", ["reservoir", "balanced", "nearest", "errors_first"])
def test_replay_of_a_kind_is_chosen_among_that_kinds_tasks(tmp_path: Path, policy: str) -> None:
    """A synthesis task that writes the texts a classification task was learned on: the
    classifier's copies are as near (a tie, broken by float noise or by id), yet every
    replayed example is the synthesis task's, and as many as asked for."""
    m = ExperienceMemory(tmp_path, EMB)
    texts = [f"the pasta number {i} was tasty" for i in range(20)]
    for task_id, kind in (("judge", "classification"), ("write", "synthesis")):
        m.register_task(TaskInfo(task_id, kind, "?", ("pos", "neg"), len(texts)), texts)
        m.add([Record(task_id, t, "pos") for t in texts])
    items = m.recall("more", texts, task_kind="synthesis")
    assert len(items) == 10 and {i.record.task_id for i in items} == {"write"}
    request = ReplayRequest("more", EMB.embed(texts), 10, task_kind="synthesis")
    assert {i.record.task_id for i in m.replay(policy, request)} == {"write"}
    assert m.recall("more", texts, task_kind="generation") == []  # no past task of that kind
    assert {i.record.task_id for i in m.recall("more", texts * 4)} == {"judge", "write"}



@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"), reason="Python 3.11+")
@pytest.mark.parametrize("policy", ["reservoir", "balanced", "nearest", "errors_first"])
def test_replay_of_a_kind_needs_no_sql_variable_per_past_task(tmp_path: Path, policy: str) -> None:
    """More past tasks of the kind than the connection takes SQL variables (lowered here to
    50; 32766 on default builds): recall still works, as many as asked for, and only of
    that kind, though the other kind's examples are the nearest to the new task's."""
    m = ExperienceMemory(tmp_path, EMB)
    near = [f"the soup number {j} was tasty" for j in range(10)]
    for i in range(60):
        texts = [f"the pasta number {i} {j} was tasty" for j in range(2)]
        m.register_task(TaskInfo(f"c{i:02d}", "classification", "?", ("pos", "neg"), 2), texts)
        m.add([Record(f"c{i:02d}", t, "pos") for t in texts])
    m.register_task(TaskInfo("s", "synthesis", "?", ("pos", "neg"), len(near)), near)
    m.add([Record("s", t, "pos") for t in near])
    m.add([Record("c01", near[0], "neg", "error", prediction="pos", correct=False)])
    m._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 50)  # the test's own connection
    statements: list[str] = []
    m._db.set_trace_callback(statements.append)  # and no query per past task of the kind
    for task_kind, n, tasks in (("classification", 20, {f"c{i:02d}" for i in range(1, 60)}),
                                ("synthesis", 10, {"s"})):
        request = ReplayRequest("c00", EMB.embed(near), n, task_kind=task_kind)
        items = m.replay(policy, request)
        assert len(items) == n and {i.record.task_id for i in items} <= tasks
        assert all(i.task.kind == task_kind for i in items)
        assert len(statements) < 60, statements
        statements.clear()
    assert m.recall("c00", near, task_kind="generation") == []
