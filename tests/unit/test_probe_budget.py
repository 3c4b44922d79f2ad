from __future__ import annotations

import pytest

from synlearner.learner.base import LearnPlan, lr_factor
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


def test_the_schedule_warms_up_over_a_tenth_then_decays_to_zero() -> None:
    task = [lr_factor(i, 120) for i in range(121)]
    assert task[:12] == pytest.approx([(i + 1) / 12 * (1 - i / 120) for i in range(12)])
    assert task[11] == pytest.approx(1 - 11 / 120)  # warmed up
    assert all(a > b for a, b in zip(task[11:], task[12:], strict=False))  # then decays
    assert task[120] == 0.0
    # a probe's first 6 steps of a 24-step task: half the rate, then nearly all of it
    # (a 6-step schedule of their own would start at the full rate and end at a sixth)
    assert lr_factor(0, 24) == 0.5 and lr_factor(5, 24) == pytest.approx(19 / 24)
    assert lr_factor(0, 6) == 1.0 and lr_factor(5, 6) == pytest.approx(1 / 6)
