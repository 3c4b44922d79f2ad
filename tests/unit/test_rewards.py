"""Each reward as a pure function, the declaration parser and the weighted sum (no torch)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synlearner.learner import rewards as R


@pytest.mark.parametrize(("answer", "reference", "want"), [
    ("Paris", "paris", 1.0),
    ("  Paris. ", "paris", 1.0),
    ("The answer is Paris", "paris", 0.0),
    ("", "paris", 0.0),
])
def test_exact_match(answer: str, reference: str, want: float) -> None:
    assert R.exact_match("q", answer, reference) == want


@pytest.mark.parametrize(("text", "want"), [
    ("17 + 25 = 42", 42.0),
    ("It costs 1,234.5 dollars", 1234.5),
    ("-3.5", -3.5),
    ("about 2e3 people", 2000.0),
    ("pi is 3,14", 3.14),  # a decimal comma
    ("no number here", None),
])
def test_last_number(text: str, want: float | None) -> None:
    assert R.last_number(text) == want


def test_numeric_tolerance() -> None:
    assert R.numeric("q", "17 + 25 = 42", "42") == 1.0
    assert R.numeric("q", "17 + 25 = 32", "42") == 0.0
    assert R.numeric("q", "41.995", "42", tolerance=0.01) == 1.0
    assert R.numeric("q", "41.9", "42", tolerance=0.01) == 0.0
    assert R.numeric("q", "103", "100", relative=0.05) == 1.0
    assert R.numeric("q", "forty-two", "42") == 0.0


def test_regex_reads_the_reference_and_never_stalls() -> None:
    assert R.regex_match("q", "-12", "x", pattern=r"-?\d+") == 1.0
    assert R.regex_match("q", "12 apples", "x", pattern=r"-?\d+") == 0.0  # the whole answer
    assert R.regex_match("q", "answer: a.b", "a.b", pattern=r"answer: {reference}") == 1.0
    assert R.regex_match("q", "answer: axb", "a.b", pattern=r"answer: {reference}") == 0.0
    started = time.perf_counter()
    assert R.regex_match("q", "a" * 40 + "!", "x", pattern=r"(a+)+$") == 0.0  # catastrophic
    assert time.perf_counter() - started < 2.0


def test_parse_names_the_field_that_is_wrong() -> None:
    assert R.parse(None) == (R.Term("exact_match"),)
    assert R.parse("numeric") == (R.Term("numeric"),)
    terms = R.parse([{"name": "numeric", "weight": 3, "tolerance": 0.5},
                     {"name": "regex", "pattern": "^[0-9]+$"}])
    assert terms == (R.Term("numeric", 3.0, {"tolerance": 0.5}),
                     R.Term("regex", 1.0, {"pattern": "^[0-9]+$"}))
    assert R.parse(R.as_spec(terms)) == terms
    cases: list[tuple[object, str]] = [
        ("bleu", "reward.name: unknown reward 'bleu'"),
        ([], "reward: expected a reward name or a non-empty list"),
        (["exact_match", {"name": "numeric", "weight": -1}], "reward.1.weight: expected a positive"),
        ([{"name": "numeric", "tol": 1}], "reward.0.tol: numeric takes no parameter 'tol'"),
        ([{"name": "regex"}], "reward.0.pattern: regex needs a pattern"),
        ([{"name": "regex", "pattern": "(unclosed"}], "reward.0.pattern: not a regular expression"),
        ([{"name": "regex", "pattern": "x" * 600}], "reward.0.pattern: 600 characters exceeds 512"),
        ([{"name": "numeric", "tolerance": float("nan")}], "reward.0.tolerance: expected a non-neg"),
        ([7], "reward.0: expected a name or an object"),
        (["exact_match"] * 9, "reward: at most 8 terms"),
    ]
    for spec, message in cases:
        with pytest.raises(R.RewardError) as err:
            R.parse(spec)
        assert str(err.value).startswith(message), (spec, str(err.value))


def test_weighted_sum_and_verifier() -> None:
    reward = R.build(R.parse([{"name": "exact_match", "weight": 1},
                              {"name": "numeric", "weight": 3}]))
    assert reward("q", "42", "42") == pytest.approx(1.0)
    assert reward("q", "the sum is 42", "42") == pytest.approx(0.75)  # numeric only
    assert reward("q", "41", "42") == 0.0
    with pytest.raises(R.RewardError, match="reward.task: verifier needs the id"):
        R.parse({"name": "verifier"})
    terms = R.parse([{"name": "verifier", "task": "judge-1"}, {"name": "exact_match"},
                     {"name": "verifier", "task": "judge-1", "weight": 2}])
    assert R.verifier_tasks(terms) == ["judge-1"]
    with pytest.raises(R.RewardError, match="no verifier for the verification task 'judge-1'"):
        R.build(terms)
    with pytest.raises(R.RewardError, match="no verifier"):
        R.build(terms, {"judge-2": lambda p, a: 5.0})
    calls: list[tuple[str, str]] = []

    def verifier(prompt: str, answer: str) -> float:
        calls.append((prompt, answer))
        return 9.0 if answer == "great" else 2.0  # out of range is clipped to 0-5

    judged = R.build(R.parse([{"name": "verifier", "task": "judge-1"}, {"name": "exact_match"}]),
                     {"judge-1": verifier})
    assert judged("p", "great", "great") == pytest.approx(1.0)
    assert judged("p", "meh", "great") == pytest.approx(0.5 * 2 / 5)
    assert calls == [("p", "great"), ("p", "meh")]
    # a task id is not a pattern: no regular-expression check on it
    assert R.parse({"name": "verifier", "task": "a(b"})[0].params == {"task": "a(b"}


@given(st.text(max_size=200), st.text(max_size=50))
def test_every_reward_is_in_the_unit_interval(answer: str, reference: str) -> None:
    reward = R.build(R.parse([{"name": "exact_match"}, {"name": "numeric"},
                              {"name": "regex", "pattern": r"\w+ {reference}"}]))
    assert 0.0 <= reward("q", answer, reference) <= 1.0
