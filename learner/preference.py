"""Preference pairs for DPO from the model's own errors (RLearner, with the error memory).

For each prompt the `preference` method has the reference, a few candidates the model
sampled (each scored by the task's reward) and the wrong answers the error memory recalled
for it. One pair is (chosen, rejected):

- chosen: the best-scored candidate when it scores at least as well as the reference,
  else the reference;
- rejected, in the order `sources` names them: `own` (the model's own recorded wrong
  answers to this very prompt: earlier versions, earlier methods), `neighbour` (wrong answers
  to the nearest inputs in the error memory: real hard negatives), `candidate` (the
  worst-scored of this method's candidates), `template` (RLearner's template negatives: an
  off-topic answer, the reference reversed, a confident near miss).

Every rejected answer is scored with the task's reward against this prompt's reference (a
neighbour's wrong answer can be right here); a pair whose score gap is under
`min_score_gap` is skipped, and so is a rejected answer equal to the chosen one. Pure
functions, no torch.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from synlearner.learner.base import Negative
from synlearner.learner.exploration import Sample
from synlearner.learner.rewards import Reward, normalise

SOURCES = ("own", "neighbour", "candidate", "template")


@dataclass(frozen=True)
class Pair:
    input: str
    chosen: str
    rejected: str
    source: str  # where the rejected answer came from (one of SOURCES)
    gap: float  # reward(chosen) - reward(rejected)


def template_negatives(reference: str, others: Sequence[str], rng: random.Random) -> list[Negative]:
    """RLearner's template hard negatives, for short exact answers: off-topic (another
    prompt's reference), reversed (the reference's characters or words backwards), and a
    confident near miss (a number moved by a small amount, or two letters swapped)."""
    out: list[Negative] = []
    pool = [o for o in others if normalise(o) != normalise(reference)]
    if pool:
        out.append(Negative(rng.choice(pool), "template", 0.0))
    words = reference.split()
    out.append(Negative(" ".join(reversed(words)) if len(words) > 1 else reference[::-1],
                        "template", 0.0))
    number = re.fullmatch(r"\s*(-?\d+)\s*", reference)
    if number:
        value = int(number.group(1))
        out.append(Negative(str(value + rng.choice([-10, -2, -1, 1, 2, 10])), "template", 0.0))
    elif len(reference) >= 2:
        i = rng.randrange(len(reference) - 1)
        swapped = reference[:i] + reference[i + 1] + reference[i] + reference[i + 2:]
        out.append(Negative(swapped, "template", 0.0))
    return out


def build_pairs(prompt: str, reference: str, candidates: Sequence[Sample],
                negatives: Sequence[Negative], reward: Reward, *, sources: Sequence[str],
                per_prompt: int, min_score_gap: float) -> tuple[list[Pair], int]:
    """Up to `per_prompt` pairs for one prompt, and how many rejected answers were skipped
    for a gap under `min_score_gap`."""
    ref_score = reward(prompt, reference, reference)
    best = max(candidates, key=lambda s: s.score, default=None)
    if best is not None and best.text and best.score >= ref_score:
        chosen, chosen_score = best.text, best.score
    else:
        chosen, chosen_score = reference, ref_score
    by_source: dict[str, list[str]] = {s: [] for s in SOURCES}
    for neg in negatives:
        by_source.setdefault(neg.source, []).append(neg.text)
    by_source["candidate"] = [s.text for s in sorted(candidates, key=lambda s: s.score)]
    seen = {normalise(chosen)}
    pairs: list[Pair] = []
    skipped = 0
    for source in sources:
        for text in by_source.get(source, []):
            if len(pairs) == per_prompt:
                return pairs, skipped
            key = normalise(text)
            if not text.strip() or key in seen:
                continue
            seen.add(key)
            gap = chosen_score - reward(prompt, text, reference)
            if gap < min_score_gap:
                skipped += 1
                continue
            pairs.append(Pair(prompt, chosen, text, source, gap))
    return pairs, skipped


def source_counts(pairs: Sequence[Pair]) -> dict[str, int]:
    """Pairs per source of the rejected answer, every source named (0 where none)."""
    counts = Counter(p.source for p in pairs)
    return {s: counts.get(s, 0) for s in SOURCES}
