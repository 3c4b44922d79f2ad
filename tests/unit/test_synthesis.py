"""The synthesis plan, every term of the hierarchical reward and its schedule (no torch)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synlearner.learner import synthesis as S
from synlearner.learner.config import SynthesisConfig

WEIGHTS = SynthesisConfig().weights  # SynLearner's: label 0.1, attribute 0.1, quality 0.5, diversity 0.3

EXAMPLES = [(f"text {label} {i}", label) for label in ("pos", "neg", "mixed") for i in range(5)]
POOLS = {"style": ["casual", "formal", "terse"], "length": ["short", "long"]}


@given(n=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_plan_is_label_balanced_and_uses_every_attribute_value_evenly(n: int, seed: int) -> None:
    plan = S.make_plan(["pos", "neg", "mixed"], EXAMPLES, n, POOLS, shots=2, seed=seed)
    assert len(plan) == n
    labels = Counter(item.label for item in plan)
    assert max(labels.values()) - min(labels.get(lab, 0) for lab in ("pos", "neg", "mixed")) <= 1
    for name, pool in POOLS.items():
        used = Counter(dict(item.attributes)[name] for item in plan)
        assert set(used) <= set(pool)
        assert max(used.values()) - min(used.get(v, 0) for v in pool) <= 1
    for item in plan:  # few-shot examples of the item's own label, no repeats
        assert len(item.shots) == 2 and len(set(item.shots)) == 2
        assert all(f" {item.label} " in shot for shot in item.shots)


def test_plan_combines_attributes_at_random_and_is_seeded() -> None:
    plan = S.make_plan(["pos", "neg"], EXAMPLES, 60, POOLS, shots=1, seed=3)
    combos = Counter(item.attributes for item in plan)
    assert len(combos) == 6  # all 3 x 2 combinations occur, not one fixed pairing
    assert plan == S.make_plan(["pos", "neg"], EXAMPLES, 60, POOLS, shots=1, seed=3)
    assert plan != S.make_plan(["pos", "neg"], EXAMPLES, 60, POOLS, shots=1, seed=4)


def test_plan_with_few_examples_gives_fewer_shots() -> None:
    plan = S.make_plan(["pos", "neg"], [("only one", "pos")], 4, {}, shots=3, seed=0)
    assert sorted(len(i.shots) for i in plan) == [0, 0, 1, 1]
    assert all(i.attributes == () for i in plan)
    with pytest.raises(ValueError, match="labels"):
        S.make_plan([], EXAMPLES, 4, {}, shots=1, seed=0)


def test_prompt_names_label_description_attributes_and_shots() -> None:
    item = S.PlanItem("pos", (("style", "casual"),), ("great stuff",))
    text = S.prompt_text("Write a product review.", item, "the reviewer is happy")
    assert text.splitlines() == [
        "Write a product review.", "Label: pos (the reviewer is happy)", "style: casual",
        "Examples of this label:", "1. great stuff",
        "Write one new text with this label. Reply with the text only."]


@pytest.mark.parametrize(("ranked", "want"), [
    (["pos", "neg", "mixed", "other"], 1.0), (["neg", "pos", "mixed", "other"], 0.6),
    (["neg", "mixed", "pos", "other"], 0.25), (["neg", "mixed", "other", "pos"], 0.0),
    (["neg", "mixed"], 0.0)])
def test_label_credit_by_the_judges_rank(ranked: list[str], want: float) -> None:
    assert S.label_credit("pos", ranked) == want


def test_attribute_compliance_rules() -> None:
    short, long_ = "tasty and cheap", " ".join(["word"] * 70)
    assert S.attribute_compliance(short, [("length", "short")]) == 1.0
    assert S.attribute_compliance(long_, [("length", "short")]) == 0.0
    assert S.attribute_compliance(long_, [("length", "long")]) == 1.0
    assert S.attribute_compliance("Great Italian pasta", [("cuisine", "italian")]) == 1.0
    assert S.attribute_compliance("Great pasta", [("cuisine", "southern italian")]) == 0.0
    assert S.attribute_compliance("Great Italian pasta", [("cuisine", "southern italian")]) == 0.5
    assert S.attribute_compliance("Italian, short", [("cuisine", "italian"), ("length", "long")]) == 0.5
    assert S.attribute_compliance("anything", []) == 1.0


def test_quality_rules() -> None:
    shot = "The battery lasts all day and charges fast."
    assert S.quality("Screen is bright and the speakers are loud.", [shot]) == 1.0
    assert S.quality(shot, [shot]) == 0.0  # a verbatim copy of a few-shot example
    assert S.quality("  the BATTERY lasts all day, and charges fast ", [shot]) == 0.0
    assert S.quality(f"Review: {shot} Love it.", [shot]) == 0.0  # holds the example
    assert S.quality("too short", []) == 0.0
    repeated = S.quality("good good good good good good", [])
    assert repeated == pytest.approx(1 / 4)  # 4 trigrams, 1 distinct
    assert S.quality("Label: pos. The screen is bright.", []) == 0.5  # repeats the scaffold


def test_diversity_against_a_hand_computed_case() -> None:
    s = np.array([[1.0, 0.8, 0.2], [0.8, 1.0, 0.5], [0.2, 0.5, 1.0]])
    # rho_1 = (0.8^2 + 0.2^2) / (0.8 + 0.2) = 0.68            -> d_1 = 3 * 0.32 = 0.96
    # rho_2 = (0.8^2 + 0.5^2) / (0.8 + 0.5) = 0.89 / 1.3       -> d_2 = 3 * (1 - 0.684615)
    # rho_3 = (0.2^2 + 0.5^2) / (0.2 + 0.5) = 0.29 / 0.7       -> d_3 = 3 * 0.585714, clipped to 1
    assert S.diversity(s) == pytest.approx([0.96, 3 * (1 - 0.89 / 1.3), 1.0])


def test_diversity_of_vectors() -> None:
    same = np.array([[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]])
    assert S.diversity_of(same) == pytest.approx([0.0, 0.0, 0.0])  # one text three times
    apart = np.eye(3)
    assert S.diversity_of(apart) == [1.0, 1.0, 1.0]
    assert S.diversity_of(np.ones((1, 4))) == [1.0]


def test_schedule_advances_with_the_step() -> None:
    sched = S.WeightSchedule(WEIGHTS, warmup_steps=10, amplitude=0.1, period=20)
    start, mid, end = sched.at(0), sched.at(5), sched.at(10)
    assert start == {"label": 0.0, "attribute": 0.0, "quality": 1.0, "diversity": 0.0}
    assert end == pytest.approx(WEIGHTS)
    assert start["diversity"] < mid["diversity"] < end["diversity"]
    later = [sched.at(step) for step in range(11, 31)]
    assert len({round(w["diversity"], 6) for w in later}) > 10  # it oscillates, it does not stall
    assert all(sum(w.values()) == pytest.approx(1.0) for w in [start, mid, end, *later])
    assert max(abs(w["quality"] / WEIGHTS["quality"] - 1) for w in later) < 0.25
    fixed = S.WeightSchedule(WEIGHTS)
    assert fixed.at(0) == fixed.at(1000) == pytest.approx(WEIGHTS)


def test_combine_is_the_weighted_sum() -> None:
    terms = {"label": 1.0, "attribute": 0.5, "quality": 0.8, "diversity": 0.0}
    assert S.combine(terms, WEIGHTS) == pytest.approx(0.1 + 0.05 + 0.4)
    with pytest.raises(ValueError, match="sum to 0"):
        S.WeightSchedule({"label": 1.0}, warmup_steps=5).at(0)


def test_group_advantages_normalise_within_a_group_and_vanish_when_it_is_uniform() -> None:
    adv = S.group_advantages([0.2, 0.4, 0.6, 0.8])
    assert sum(adv) == pytest.approx(0.0, abs=1e-9)
    assert adv == sorted(adv) and adv[-1] == pytest.approx(0.3 / np.std([0.2, 0.4, 0.6, 0.8]), rel=1e-3)
    assert S.group_advantages([0.5, 0.5, 0.5]) == [0.0, 0.0, 0.0]  # nothing to learn from
    assert S.group_advantages([0.9]) == [0.0]


def test_set_diversity_is_the_mean_pairwise_distance_and_distinct_bigrams() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    got = S.set_diversity(["a b c", "a b d", "e f"], v)
    # cosines: (1,2) 0, (1,3) 1, (2,3) 0 -> mean similarity 1/3
    assert got["pairwise_distance"] == pytest.approx(2 / 3)
    # bigrams: ab bc ab bd ef -> 4 distinct of 5
    assert got["distinct_2"] == pytest.approx(4 / 5)
    assert S.set_diversity(["one"], v[:1]) == {"pairwise_distance": 0.0, "distinct_2": 0.0}


def test_the_reward_weights_name_the_terms_and_sum_to_more_than_zero() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'style' is not a term"):
        SynthesisConfig(weights={"style": 1.0})
    with pytest.raises(ValidationError, match="sum to more than 0"):
        SynthesisConfig(weights={"label": 0.0})
    assert set(SynthesisConfig().weights) == set(S.TERMS)
