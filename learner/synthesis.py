"""SynLearner's building blocks for synthesis tasks, pure (no torch): the diversity-aware
plan of what to synthesise, its prompts, the terms of the hierarchical reward and the
schedule of their weights.

- `make_plan`: N samples, label-balanced (label counts differ by at most one), each with a
  combination of attribute values (every value of a pool used equally often, give or take
  one, combined at random) and few-shot examples of its label drawn at random.
- Reward terms, each in [0, 1]:
  - `label_credit`: the judge's rank of the intended label; 1 first, 0.6 second, 0.25
    third, else 0 (SynLearner's exact / off by one / off by two);
  - `attribute_compliance`: rules: a `length` of short, medium or long is a word-count
    range; any other value counts as complied with in the share of its words the text
    contains;
  - `quality`: 0 for a text under `min_words` words or one that copies a few-shot example
    (equal to one, or one within the other, after normalising); else the share of
    distinct word trigrams (repetition costs), halved when the text repeats the prompt's
    scaffold (`Label:`);
  - `diversity`: set-level, over one group of generations for the same prompt: with s_ij
    the cosine of sample i and j (clipped to [0, 1]), rho_i = sum_j (s_ij / sum_k s_ik) *
    s_ij and d_i = clip(3 * (1 - rho_i), 0, 1).
- `WeightSchedule`: the weights as a function of the training step: a linear warm-up of
  every term but quality, then an optional oscillation of each term (phase-shifted, so
  that their balance moves), normalised to sum to 1. SynLearner's published code has this
  schedule but never advances its step; here the step is an argument.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

TERMS = ("label", "attribute", "quality", "diversity")
RANK_CREDIT = (1.0, 0.6, 0.25)
LENGTH_WORDS = {"short": (1, 30), "medium": (20, 80), "long": (60, math.inf)}
SCAFFOLD = ("label:", "examples of this label")


@dataclass(frozen=True)
class PlanItem:
    """One sample to synthesise: its label, attribute values and few-shot examples."""

    label: str
    attributes: tuple[tuple[str, str], ...] = ()
    shots: tuple[str, ...] = ()


def _balanced(values: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """`n` values, each used n // len(values) times or once more, in random order (which
    values get the extra use is random too)."""
    out = list(values) * (n // len(values)) + rng.sample(list(values), n % len(values))
    rng.shuffle(out)
    return out


def make_plan(labels: Sequence[str], examples: Sequence[tuple[str, str]], n: int,
              attributes: Mapping[str, Sequence[str]], shots: int, seed: int) -> list[PlanItem]:
    """A label-balanced plan of `n` samples; `examples` are (text, label) pairs, the few-shot
    pool (an item gets at most `shots` of its own label's, fewer when its label has fewer)."""
    if not labels:
        raise ValueError("labels: a plan needs at least one label")
    rng = random.Random(seed)
    return plan_of(_balanced(labels, n, rng), examples, attributes, shots, rng)


def plan_of(plan_labels: Sequence[str], examples: Sequence[tuple[str, str]],
            attributes: Mapping[str, Sequence[str]], shots: int,
            rng: random.Random) -> list[PlanItem]:
    """A plan with the labels given, in their order (e.g. an evaluation split's), and the
    attribute values and few-shot draws of `make_plan`."""
    n = len(plan_labels)
    columns = {name: _balanced(pool, n, rng) for name, pool in attributes.items() if pool}
    by_label: dict[str, list[str]] = {}
    for text, label in examples:
        by_label.setdefault(label, []).append(text)
    items = []
    for i, label in enumerate(plan_labels):
        pool = by_label.get(label, [])
        items.append(PlanItem(label, tuple((name, col[i]) for name, col in columns.items()),
                              tuple(rng.sample(pool, min(shots, len(pool))))))
    return items


def prompt_text(instruction: str, item: PlanItem, description: str = "") -> str:
    """The request for one plan item (the user turn; the learner adds the chat template)."""
    lines = [instruction.strip()] if instruction.strip() else []
    lines.append(f"Label: {item.label}" + (f" ({description})" if description else ""))
    if item.attributes:
        lines.append("; ".join(f"{name}: {value}" for name, value in item.attributes))
    if item.shots:
        lines.append("Examples of this label:")
        lines += [f"{i}. {shot}" for i, shot in enumerate(item.shots, 1)]
    lines.append("Write one new text with this label. Reply with the text only.")
    return "\n".join(lines)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def _words(text: str) -> list[str]:
    return _norm(text).split()


def label_credit(intended: str, ranked: Sequence[str]) -> float:
    """Credit for the judge's ranking of labels (most likely first)."""
    rank = list(ranked).index(intended) if intended in ranked else len(RANK_CREDIT)
    return RANK_CREDIT[rank] if rank < len(RANK_CREDIT) else 0.0


def attribute_compliance(text: str, attributes: Sequence[tuple[str, str]]) -> float:
    """The mean, over the item's attributes, of how far the text complies (see the module)."""
    if not attributes:
        return 1.0
    words = _words(text)
    present = set(words)
    scores = []
    for name, value in attributes:
        if name.lower() == "length" and value.lower() in LENGTH_WORDS:
            low, high = LENGTH_WORDS[value.lower()]
            scores.append(1.0 if low <= len(words) <= high else 0.0)
        else:
            wanted = [w for w in _words(value) if len(w) >= 3] or _words(value)
            scores.append(sum(w in present for w in wanted) / len(wanted) if wanted else 1.0)
    return float(np.mean(scores))


def copies(text: str, shots: Sequence[str]) -> bool:
    """Whether `text` is one of `shots`, or one holds the other (whole words), after
    normalising."""
    t = f" {_norm(text)} "
    return any(t.strip() and s.strip() and (s in t or t in s)
               for s in (f" {_norm(shot)} " for shot in shots))


def quality(text: str, shots: Sequence[str] = (), min_words: int = 3) -> float:
    """Rule-based format and quality (see the module)."""
    words = _words(text)
    if len(words) < min_words or copies(text, shots):
        return 0.0
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    score = len(set(grams)) / len(grams) if grams else 1.0
    if any(marker in text.lower() for marker in SCAFFOLD):
        score *= 0.5
    return score


def diversity(similarities: np.ndarray) -> list[float]:
    """d_i of each sample of one group from the group's cosine similarity matrix."""
    s = np.clip(np.asarray(similarities, dtype=np.float64), 0.0, 1.0)
    n = s.shape[0]
    if n < 2:
        return [1.0] * n
    np.fill_diagonal(s, 0.0)
    total = s.sum(axis=1)
    rho = np.divide((s * s).sum(axis=1), total, out=np.zeros(n), where=total > 0)
    return [float(d) for d in np.clip(3.0 * (1.0 - rho), 0.0, 1.0)]


def group_advantages(rewards: Sequence[float], eps: float = 1e-4) -> list[float]:
    """GRPO's advantages of one group: each reward less the group's mean, over the group's
    standard deviation; all 0 when the rewards are equal (the group teaches nothing)."""
    r = np.asarray(rewards, dtype=np.float64)
    std = float(r.std())
    if r.size < 2 or std < 1e-6:
        return [0.0] * int(r.size)
    return [float(a) for a in (r - r.mean()) / (std + eps)]


def set_diversity(texts: Sequence[str], vectors: np.ndarray) -> dict[str, float]:
    """How diverse a synthesised set is: the mean pairwise cosine distance of its
    embeddings, and its distinct word bigrams over all its bigrams (distinct-2)."""
    v = np.asarray(vectors, dtype=np.float64)
    n = len(texts)
    if n >= 2:
        v = v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
        sim = v @ v.T
        distance = max(0.0, float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1))))
    else:
        distance = 0.0
    grams = [tuple(w[i : i + 2]) for w in (_words(t) for t in texts) for i in range(len(w) - 1)]
    return {"pairwise_distance": distance,
            "distinct_2": len(set(grams)) / len(grams) if grams else 0.0}


def diversity_of(vectors: np.ndarray) -> list[float]:
    """`diversity` of a group given its embeddings (normalised here)."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
    return diversity(v @ v.T)


@dataclass(frozen=True)
class WeightSchedule:
    """The reward weights at a training step (see the module); `amplitude` 0: no oscillation."""

    weights: Mapping[str, float]
    warmup_steps: int = 0
    amplitude: float = 0.0
    period: int = 50

    def at(self, step: int) -> dict[str, float]:
        raw = {}
        for k, name in enumerate(TERMS):
            w = float(self.weights.get(name, 0.0))
            if name != "quality" and self.warmup_steps > 0:
                w *= min(1.0, step / self.warmup_steps)
            if self.amplitude and step > self.warmup_steps:
                phase = 2 * math.pi * ((step - self.warmup_steps) / self.period + k / len(TERMS))
                w *= 1.0 + self.amplitude * math.sin(phase)
            raw[name] = max(w, 0.0)
        total = sum(raw.values())
        if total <= 0:
            raise ValueError("weights: the reward's weights sum to 0 at this step")
        return {name: w / total for name, w in raw.items()}


def combine(terms: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The hierarchical reward: the weighted sum of the terms."""
    return float(sum(weights[name] * terms[name] for name in TERMS))
