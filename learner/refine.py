"""Refinement at inference (ILearner): generate, score with a verifier, ask again.

Round 1 answers each input once. While an input's best answer scores under `threshold`
(and rounds are left), the model is asked again with its last answer and that answer's
score in the prompt (`feedback`); every new answer is scored, and the best-scored answer of
all rounds is kept (ties: the earliest), so a round can never make an input's answer worse
by the verifier's account. Each round is one batched generation over the inputs still
under the threshold. Pure: the model comes in as `generate`, the verifier as `score`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from synlearner.learner.rewards import Scorer

Generate = Callable[[list[str]], list[str]]  # inputs -> one answer each


@dataclass(frozen=True)
class Refined:
    answer: str  # the best-scored answer of all rounds
    score: float  # its verifier score, 0-5
    rounds: int  # answers generated for this input (1: no refinement was needed)
    history: tuple[tuple[str, float], ...]  # every (answer, score), in order


def feedback(text: str, answer: str, score: float) -> str:
    """The input of a refinement round."""
    return (f"{text}\n\nYour last answer was: {answer}\nIt scored {score:.1f} out of 5. "
            "Give a better answer.")


def refine(generate: Generate, score: Scorer, texts: Sequence[str], rounds: int,
           threshold: float) -> list[Refined]:
    """At most `rounds` answers per input; stop for an input once one scores `threshold`."""
    if rounds < 1:
        raise ValueError("refine: rounds must be at least 1")
    history: list[list[tuple[str, float]]] = [
        [(a, score(t, a))] for t, a in zip(texts, generate(list(texts)), strict=True)]
    for _ in range(rounds - 1):
        todo = [i for i, h in enumerate(history) if max(s for _, s in h) < threshold]
        if not todo:
            break
        asked = [feedback(texts[i], *history[i][-1]) for i in todo]
        for i, answer in zip(todo, generate(asked), strict=True):
            history[i].append((answer, score(texts[i], answer)))
    out = []
    for h in history:
        best = max(range(len(h)), key=lambda j: (h[j][1], -j))
        out.append(Refined(h[best][0], h[best][1], len(h), tuple(h)))
    return out
