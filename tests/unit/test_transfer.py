from __future__ import annotations

import pytest

from synlearner.daemon.transfer import sparse_transfer_metrics, transfer_metrics

# Three tasks. Row i: scores after learning tasks 0..i; R[i][i+1] is task i+1's score with
# its initial adapter before training on it. b: base model scores.
R = [
    [0.80, 0.60],
    [0.70, 0.90, 0.55],
    [0.65, 0.85, 0.95],
]
B = [0.50, 0.40, 0.50]


def test_metrics_match_hand_computation() -> None:
    m = transfer_metrics(R, B)
    assert m.tasks == 3
    assert m.acc == pytest.approx((0.65 + 0.85 + 0.95) / 3)
    assert m.bwt == pytest.approx(((0.65 - 0.80) + (0.85 - 0.90)) / 2)  # -0.10
    assert m.fwt == pytest.approx(((0.60 - 0.40) + (0.55 - 0.50)) / 2)  # +0.125
    # forgetting: task 0: max(0.80, 0.70) - 0.65 = 0.15; task 1: 0.90 - 0.85 = 0.05
    assert m.forgetting == pytest.approx(0.10)


def test_single_task_and_empty() -> None:
    m = transfer_metrics([[0.9]], [0.5])
    assert (m.acc, m.bwt, m.fwt, m.forgetting) == (0.9, 0.0, 0.0, 0.0)
    assert transfer_metrics([], []).tasks == 0


def test_missing_entry_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"R\[0\]\[1\]"):
        transfer_metrics([[0.8], [0.7, 0.9]], [0.5, 0.5])


def test_sparse_metrics_equal_the_full_ones_on_a_full_matrix() -> None:
    assert sparse_transfer_metrics(R, B) == transfer_metrics(R, B)


def test_sparse_metrics_use_the_rows_that_were_measured() -> None:
    # the task-agnostic matrix scored after the first and the last task only
    sparse = [[0.80, None], [None, None, None], [0.65, 0.85, 0.95]]
    m = sparse_transfer_metrics(sparse, B)
    assert m is not None and m.tasks == 3
    assert m.acc == pytest.approx((0.65 + 0.85 + 0.95) / 3)
    assert m.bwt == pytest.approx(0.65 - 0.80)  # only task 0 was measured before the end
    assert m.forgetting == pytest.approx(0.80 - 0.65)
    assert m.fwt == 0.0  # no score before training was measured
    assert sparse_transfer_metrics([[None], [None, None]], B) is None
