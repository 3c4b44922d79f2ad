"""Refinement at inference: the loop's rules, with a scripted model and verifier."""

from __future__ import annotations

import pytest

from synlearner.learner.refine import feedback, refine


class Scripted:
    """Answers from a script per input; a refinement prompt is answered with the next one."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls.append(texts)
        out = []
        for text in texts:
            base = text.split("\n\nYour last answer was:")[0]
            turn = sum(base == t.split("\n\nYour last answer was:")[0] for c in self.calls for t in c)
            out.append(self.script[base][turn - 1])
        return out


SCORES = {"40": 1.0, "41": 3.0, "42": 5.0, "7": 5.0, "x": 0.0, "y": 2.0, "z": 1.0}


def score(text: str, answer: str) -> float:
    return SCORES[answer]


def test_refinement_stops_at_the_threshold_and_keeps_the_best_answer() -> None:
    model = Scripted({"sum": ["40", "41", "42", "40"], "easy": ["7"], "hard": ["x", "y", "z"]})
    got = refine(model, score, ["sum", "easy", "hard"], rounds=3, threshold=4.5)
    assert [g.answer for g in got] == ["42", "7", "y"]  # hard: y beat the later z
    assert [g.rounds for g in got] == [3, 1, 3]
    assert [g.score for g in got] == [5.0, 5.0, 2.0]
    assert got[0].history == (("40", 1.0), ("41", 3.0), ("42", 5.0))
    # one batched call per round, only for the inputs still under the threshold
    assert [len(c) for c in model.calls] == [3, 2, 2]
    assert model.calls[1][0] == feedback("sum", "40", 1.0)
    assert "It scored 1.0 out of 5" in model.calls[1][0]


def test_one_round_is_a_plain_pass_and_ties_keep_the_first_answer() -> None:
    model = Scripted({"sum": ["40", "41"]})
    assert refine(model, score, ["sum"], rounds=1, threshold=4.5)[0].answer == "40"
    tie = Scripted({"q": ["42", "7"]})
    assert refine(tie, score, ["q"], rounds=2, threshold=6.0)[0].answer == "42"
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        refine(model, score, ["sum"], rounds=0, threshold=4.5)
