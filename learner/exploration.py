"""Balanced self-training (B-STaR): how much a round's sampled answers explore and how well
the reward keeps the right ones, and the choice of temperature T and threshold tau.

Per prompt, a round samples answers; each has a reward score and whether it is correct.
The answers kept for training are the unique ones scoring at least tau. The balance score of
a prompt is min(n / n*, 1) * n / N, with n the unique correct answers kept and N the unique
answers kept (0 when none is kept); a round's is the mean over its prompts.

B-STaR picks (T, tau) each round by a full grid: 15 temperatures (0.50..1.20) x 64 samples per
dev prompt, tau in steps of 0.01. Here tau costs no sampling: the balance score only changes
at the scores that occur, so every distinct score is tried on the samples already drawn,
which is exact. T is chosen by successive halving: every temperature gets a few samples per
dev prompt, the better half gets twice as many more, and so on until one is left.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    text: str
    score: float  # the reward
    correct: bool  # the task's check against the reference (exact match or the reward's own)


def prompt_balance(samples: Sequence[Sample], tau: float, n_star: int = 8) -> float:
    kept: dict[str, bool] = {}
    for s in samples:
        if s.score >= tau:
            kept[s.text] = kept.get(s.text, False) or s.correct
    if not kept:
        return 0.0
    n = sum(kept.values())
    return min(n / n_star, 1.0) * n / len(kept)


def balance_score(by_prompt: Sequence[Sequence[Sample]], tau: float, n_star: int = 8) -> float:
    if not by_prompt:
        return 0.0
    return sum(prompt_balance(s, tau, n_star) for s in by_prompt) / len(by_prompt)


def best_tau(by_prompt: Sequence[Sequence[Sample]], n_star: int = 8) -> tuple[float, float]:
    """The threshold with the highest balance score over the scores that occur (ties: the
    lowest threshold, which keeps the most), and that score."""
    candidates = sorted({s.score for group in by_prompt for s in group})
    best = (-math.inf, 0.0)
    for tau in candidates:
        score = balance_score(by_prompt, tau, n_star)
        if score > best[1] + 1e-12 or best[0] == -math.inf:
            best = (tau, score)
    return best if best[0] != -math.inf else (0.0, 0.0)


def pass_at(by_prompt: Sequence[Sequence[Sample]]) -> tuple[float, float]:
    """pass@1 (the mean share of correct samples) and pass@K (the share of prompts with at
    least one correct sample), over the samples drawn."""
    if not by_prompt:
        return 0.0, 0.0
    p1 = sum(sum(s.correct for s in g) / max(1, len(g)) for g in by_prompt) / len(by_prompt)
    pk = sum(any(s.correct for s in g) for g in by_prompt) / len(by_prompt)
    return p1, pk


def unique_correct_ratio(by_prompt: Sequence[Sequence[Sample]]) -> float:
    """Unique correct answers over all correct answers drawn (1: no duplicates)."""
    correct = [s.text for g in by_prompt for s in g if s.correct]
    unique = sum(len({s.text for s in g if s.correct}) for g in by_prompt)
    return unique / len(correct) if correct else 0.0


def selection_precision(by_prompt: Sequence[Sequence[Sample]], tau: float) -> float:
    """Of the samples the threshold keeps, the share that is correct (the reward's precision)."""
    kept = [s for g in by_prompt for s in g if s.score >= tau]
    return sum(s.correct for s in kept) / len(kept) if kept else 0.0


# (temperature, dev prompt indices, samples per prompt) -> samples per prompt, in order
Sampler = Callable[[float, Sequence[int], int], list[list[Sample]]]

B_STAR_TEMPERATURES = tuple(round(0.5 + 0.05 * i, 2) for i in range(15))  # 0.50..1.20
B_STAR_SAMPLES = 64


@dataclass
class Choice:
    temperature: float
    tau: float
    balance: float
    samples: int  # samples the search drew
    scores: dict[float, float] = field(default_factory=dict)  # T -> its best balance at its last rung


def successive_halving(sample: Sampler, n_prompts: int,
                       temperatures: Sequence[float] = B_STAR_TEMPERATURES, first: int = 8,
                       n_star: int = 8) -> Choice:
    """Pick (T, tau): every temperature draws `first` samples per dev prompt; the better half
    (by its best balance score over tau) draws as many again as it has, and so on until one
    temperature is left. Samples are kept between rungs, so a survivor's score at each rung
    reads all it has drawn."""
    if n_prompts <= 0 or not temperatures:
        raise ValueError("successive_halving: needs dev prompts and temperatures")
    prompts = list(range(n_prompts))
    drawn: dict[float, list[list[Sample]]] = {t: [[] for _ in prompts] for t in temperatures}
    alive, spent, per = list(temperatures), 0, first
    scores: dict[float, float] = {}
    while True:
        for t in alive:
            extra = per - len(drawn[t][0])
            if extra > 0:
                new = sample(t, prompts, extra)
                for have, got in zip(drawn[t], new, strict=True):
                    have.extend(got)
                spent += extra * n_prompts
            scores[t] = best_tau(drawn[t], n_star)[1]
        if len(alive) == 1:
            break
        alive = sorted(alive, key=lambda t: (-scores[t], t))[: max(1, len(alive) // 2)]
        per *= 2
    t = alive[0]
    tau, balance = best_tau(drawn[t], n_star)
    return Choice(t, tau, balance, spent, scores)


def full_grid(sample: Sampler, n_prompts: int,
              temperatures: Sequence[float] = B_STAR_TEMPERATURES,
              per_prompt: int = B_STAR_SAMPLES, n_star: int = 8) -> Choice:
    """B-STaR's search: every temperature with `per_prompt` samples per dev prompt."""
    prompts = list(range(n_prompts))
    best: Choice | None = None
    scores: dict[float, float] = {}
    for t in temperatures:
        drawn = sample(t, prompts, per_prompt)
        tau, balance = best_tau(drawn, n_star)
        scores[t] = balance
        if best is None or balance > best.balance + 1e-12:
            best = Choice(t, tau, balance, 0)
    assert best is not None
    best.samples = len(temperatures) * per_prompt * n_prompts
    best.scores = scores
    return best
