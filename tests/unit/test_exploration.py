"""The balance score against hand-computed cases, and the (T, tau) search against B-STaR's
full grid on fixed scores (no torch)."""

from __future__ import annotations

import random

import pytest

from synlearner.learner.exploration import (
    Sample,
    balance_score,
    best_tau,
    full_grid,
    pass_at,
    prompt_balance,
    selection_precision,
    successive_halving,
    unique_correct_ratio,
)


def s(text: str, score: float, correct: bool) -> Sample:
    return Sample(text, score, correct)


def test_balance_score_by_hand() -> None:
    # prompt 1: kept at tau 0.5: a (correct, twice), b (correct), c (wrong) -> n=2, N=3
    p1 = [s("a", 0.9, True), s("a", 0.9, True), s("b", 0.8, True), s("c", 0.6, False),
          s("d", 0.1, False)]
    assert prompt_balance(p1, 0.5, n_star=4) == pytest.approx(min(2 / 4, 1) * 2 / 3)
    assert prompt_balance(p1, 0.5, n_star=2) == pytest.approx(1 * 2 / 3)
    assert prompt_balance(p1, 0.85, n_star=2) == pytest.approx(1 / 2 * 1 / 1)  # only a
    assert prompt_balance(p1, 0.95) == 0.0  # nothing kept
    p2 = [s("x", 0.7, False), s("y", 0.7, False)]
    assert balance_score([p1, p2], 0.5, n_star=4) == pytest.approx((2 / 4 * 2 / 3 + 0) / 2)
    assert balance_score([], 0.5) == 0.0


def test_best_tau_is_exact_over_a_fine_grid() -> None:
    rng = random.Random(3)
    groups = [[s(f"t{rng.randrange(12)}", round(rng.random(), 3), rng.random() < 0.4)
               for _ in range(16)] for _ in range(6)]
    tau, score = best_tau(groups, n_star=4)
    grid = max(balance_score(groups, t / 1000, n_star=4) for t in range(-1, 1001))
    assert score == pytest.approx(grid)
    assert balance_score(groups, tau, n_star=4) == pytest.approx(score)


def test_round_statistics() -> None:
    groups = [[s("a", 1, True), s("a", 1, True), s("b", 0, False)], [s("c", 0, False)]]
    assert pass_at(groups) == (pytest.approx((2 / 3 + 0) / 2), 0.5)
    assert unique_correct_ratio(groups) == 0.5  # "a" twice
    assert selection_precision(groups, 0.5) == 1.0
    assert selection_precision(groups, 0.0) == 0.5


class FixedSequences:
    """Fixed scores: each (T, prompt) has one fixed sequence of answers, every draw taking the
    next ones, so the grid's 64 and the search's fewer samples are prefixes of the same
    sequence. Every answer is new; a share p(T) of them is correct, spread evenly along the
    sequence (a golden-ratio sequence), and the reward scores all alike (it cannot tell):
    the balance ranks temperatures by p(T) at every budget, and T = 0.9 is the best."""

    def __init__(self) -> None:
        self.next: dict[tuple[float, int], int] = {}

    def __call__(self, t: float, prompts: list[int], k: int) -> list[list[Sample]]:
        share = 0.95 - abs(t - 0.9)
        out = []
        for p in prompts:
            start = self.next.get((t, p), 0)
            self.next[(t, p)] = start + k
            out.append([Sample(f"{p}-{j}", 0.5, ((j + 7 * p + 1) * 0.6180339887) % 1 < share)
                        for j in range(start, start + k)])
        return out


def test_successive_halving_finds_the_grids_temperature_for_far_fewer_samples() -> None:
    grid = full_grid(FixedSequences(), n_prompts=8)
    search = successive_halving(FixedSequences(), n_prompts=8)
    assert grid.samples == 15 * 64 * 8
    assert grid.temperature == 0.9
    assert search.temperature == grid.temperature
    assert search.samples < grid.samples / 3
    # tau: the grid's choice is exact over B-STaR's 0.01 steps on the same samples
    drawn = FixedSequences()(grid.temperature, list(range(8)), 64)
    assert grid.balance == pytest.approx(max(balance_score(drawn, t / 100) for t in range(-100, 101)))


def test_successive_halving_rungs_double_and_keep_samples() -> None:
    drawn: list[tuple[float, int]] = []

    def sampler(t: float, prompts: list[int], k: int) -> list[list[Sample]]:
        drawn.append((t, k))  # every sample a new answer
        return [[Sample(f"{t}-{len(drawn)}-{j}", t, t == 0.8) for j in range(k)] for _ in prompts]

    choice = successive_halving(sampler, n_prompts=2, temperatures=[0.5, 0.6, 0.7, 0.8],
                                first=2, n_star=8)
    assert choice.temperature == 0.8  # the only one with correct answers
    # rung 1: four temperatures x 2; rung 2: two x 2 more; rung 3: one x 4 more
    assert sorted(k for _, k in drawn) == [2, 2, 2, 2, 2, 2, 4]
    assert choice.samples == (2 * 4 + 2 * 2 + 4) * 2
    assert choice.balance == pytest.approx(min(8 / 8, 1) * 8 / 8)
