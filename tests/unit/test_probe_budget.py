from __future__ import annotations

from synlearner.learner.base import LearnPlan
from synlearner.learner.probe import affordable, worse
from synlearner.memory.base import Record, ReplayItem, TaskInfo

REPLAY = [ReplayItem(Record("old", "text", "a"), TaskInfo("old", "classification", "", ("a", "b"), 1))]


def plan(steps: int = 6, budget: float = 0.25) -> LearnPlan:
    return LearnPlan("new", probe_steps=steps, probe_budget=budget)


def test_a_long_task_affords_the_full_probe() -> None:
    # three arms (fresh, transferred, alone): two lose; 0.25 x 120 / 2 = 15 >= 6
    assert affordable("old", REPLAY, plan(), total=120) == (6, True)


def test_a_short_task_gets_fewer_steps_then_no_replay_check_then_no_probe() -> None:
    assert affordable("old", REPLAY, plan(), total=40) == (5, True)  # 0.25 x 40 / 2
    assert affordable("old", REPLAY, plan(), total=24) == (6, False)  # 3 per arm: too few
    assert affordable("old", REPLAY, plan(), total=12) == (0, False)  # 3 for one arm: too few
    assert affordable("old", REPLAY, plan(steps=3), total=12) == (3, False)  # the user's 3
    assert affordable(None, REPLAY, plan(), total=16) == (4, True)  # fresh vs alone only


def test_nothing_to_compare_is_no_probe() -> None:
    assert affordable(None, [], plan(), total=120) == (0, False)
    assert affordable("old", REPLAY, plan(steps=0), total=120) == (0, False)


def test_worse_is_a_higher_loss_with_no_better_accuracy() -> None:
    assert worse((0.5, 0.9), (0.5, 0.7))
    assert not worse((0.6, 0.9), (0.5, 0.7))  # more right answers, less sure of them
    assert not worse((0.4, 0.6), (0.5, 0.7))  # fewer right answers, a lower loss
    assert not worse((0.5, 0.7), (0.5, 0.7))
