"""Preference pairs from the error memory, with their fallbacks, and the memory's recall of
recorded wrong answers (no torch)."""

from __future__ import annotations

import random
from pathlib import Path

from synlearner.learner.base import Negative
from synlearner.learner.exploration import Sample
from synlearner.learner.preference import build_pairs, source_counts, template_negatives
from synlearner.learner.rewards import exact_match, numeric
from synlearner.memory import ExperienceMemory, HashingEmbedder, Record, TaskInfo

ALL = ("own", "neighbour", "candidate", "template")


def cands(*items: tuple[str, float]) -> list[Sample]:
    return [Sample(text, score, score == 1.0) for text, score in items]


def test_rejected_answers_come_from_own_errors_then_neighbours_then_the_worst_candidate() -> None:
    negs = [Negative("41", "own"), Negative("44", "neighbour", 0.8), Negative("40", "own")]
    pairs, skipped = build_pairs("17 + 25", "42", cands(("42", 1.0), ("43", 0.0)), negs, numeric,
                                 sources=ALL, per_prompt=3, min_score_gap=0.3)
    assert [(p.rejected, p.source) for p in pairs] == [("41", "own"), ("40", "own"),
                                                       ("44", "neighbour")]
    assert all(p.chosen == "42" and p.gap == 1.0 for p in pairs) and skipped == 0
    # no recalled errors: the worst-scored candidate is the rejected answer
    pairs, _ = build_pairs("17 + 25", "42", cands(("42", 1.0), ("43", 0.0), ("42.", 1.0)), [],
                           numeric, sources=ALL, per_prompt=1, min_score_gap=0.3)
    assert [(p.rejected, p.source) for p in pairs] == [("43", "candidate")]


def test_the_order_of_sources_is_the_config_s() -> None:
    negs = [Negative("41", "own"), Negative("44", "neighbour")]
    pairs, _ = build_pairs("17 + 25", "42", cands(("40", 0.0)), negs, numeric,
                           sources=("candidate", "neighbour"), per_prompt=5, min_score_gap=0.3)
    assert [p.source for p in pairs] == ["candidate", "neighbour"]  # `own` not asked for


def test_a_neighbour_s_wrong_answer_that_is_right_here_is_skipped_by_the_gap() -> None:
    # "42" was wrong for 20 + 23 (a neighbour) but is the answer to 17 + 25
    negs = [Negative("42", "neighbour", 0.9), Negative("43", "neighbour", 0.8)]
    pairs, skipped = build_pairs("17 + 25", "42", [], negs, numeric, sources=ALL, per_prompt=4,
                                 min_score_gap=0.3)
    # the first equals the chosen answer (the reference: no candidates) and is dropped unscored
    assert [p.rejected for p in pairs] == ["43"] and skipped == 0
    graded = lambda prompt, answer, ref: {"good": 1.0, "close": 0.8, "bad": 0.1}[answer]  # noqa: E731
    pairs, skipped = build_pairs("q", "good", [], [Negative("close", "own"), Negative("bad", "own")],
                                 graded, sources=ALL, per_prompt=4, min_score_gap=0.3)
    assert [(p.rejected, round(p.gap, 2)) for p in pairs] == [("bad", 0.9)] and skipped == 1


def test_chosen_is_the_best_candidate_unless_the_reference_scores_higher() -> None:
    graded = lambda prompt, answer, ref: {"ref": 0.9, "a": 1.0, "b": 0.2, "c": 0.0}[answer]  # noqa: E731
    pairs, _ = build_pairs("q", "ref", cands(("a", 1.0), ("c", 0.0)), [], graded,
                           sources=ALL, per_prompt=1, min_score_gap=0.3)
    assert pairs[0].chosen == "a" and pairs[0].rejected == "c"
    pairs, _ = build_pairs("q", "ref", cands(("b", 0.2), ("c", 0.0)), [], graded,
                           sources=ALL, per_prompt=2, min_score_gap=0.3)
    assert [(p.chosen, p.rejected) for p in pairs] == [("ref", "c"), ("ref", "b")]  # worst first


def test_duplicates_and_empty_answers_make_no_pair() -> None:
    negs = [Negative("Blue", "own"), Negative(" blue. ", "neighbour"), Negative("  ", "own")]
    pairs, _ = build_pairs("sky", "blue", cands(("red", 0.0), ("RED", 0.0)), negs, exact_match,
                           sources=ALL, per_prompt=5, min_score_gap=0.3)
    assert [p.rejected for p in pairs] == ["red"]
    assert source_counts(pairs) == {"own": 0, "neighbour": 0, "candidate": 1, "template": 0}


def test_template_negatives_are_wrong_and_of_the_answer_s_shape() -> None:
    rng = random.Random(0)
    negs = template_negatives("42", ["42", "17", "99"], rng)
    assert [n.source for n in negs] == ["template"] * 3
    off_topic, reversed_, near = (n.text for n in negs)
    assert off_topic in ("17", "99") and reversed_ == "24"
    assert near != "42" and abs(int(near) - 42) in (1, 2, 10)
    words = template_negatives("new york city", [], rng)
    assert [n.text for n in words][0] == "city york new" and len(words) == 2
    assert words[1].text != "new york city" and sorted(words[1].text) == sorted("new york city")
    pairs, _ = build_pairs("1 + 41", "42", [], negs, exact_match, sources=("template",),
                           per_prompt=3, min_score_gap=0.3)
    assert len(pairs) == 3 and {p.source for p in pairs} == {"template"}


def test_memory_recalls_own_errors_first_then_neighbours_never_eval_or_other_kinds(
        tmp_path: Path) -> None:
    mem = ExperienceMemory(tmp_path, HashingEmbedder(128))
    mem.register_task(TaskInfo("sums", "generation", "add", (), 3), ["17 + 25"])
    mem.register_task(TaskInfo("topics", "classification", "?", ("a", "b"), 2), ["x"])
    mem.add([
        Record("sums", "17 + 25", "42", "error", "train", "32", False),
        Record("sums", "17 + 25", "42", "error", "self_train", "41", False),
        Record("sums", "17 + 25", "42", "error", "eval", "40", False),  # never: evaluation
        Record("sums", "17 + 26", "43", "error", "train", "33", False),
        Record("sums", "17 + 25", "42", "experience", "train", "42", True),
        Record("topics", "17 + 25 apples", "a", "error", "train", "b", False),  # a label
    ])
    own, none = mem.negatives(["17 + 25", "zebra"], k=4)
    assert [(h.record.prediction, h.score) for h in own[:2]] == [("41", 1.0), ("32", 1.0)]
    assert [h.record.prediction for h in own[2:]] == ["33"]  # the nearest other input's
    assert 0 < own[2].score < 1
    # no error for "zebra" itself: its nearest recorded inputs' wrong answers, as neighbours
    assert sorted(h.record.prediction for h in none) == ["32", "33", "41"]
    assert mem.negatives([], k=4) == []
    assert [h.record.prediction for h in mem.negatives(["17 + 25"], k=1)[0]] == ["41", "33"]
    assert [h.record.prediction for h in mem.negatives(["17 + 25"], k=0)[0]] == ["41"]
