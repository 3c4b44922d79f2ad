"""Rewards of generation tasks: how good an answer is, in [0, 1].

A task declares its reward (`reward` in the task message) as one name or a weighted sum:

    "reward": "exact_match"
    "reward": [{"name": "numeric", "weight": 0.7, "tolerance": 0.01},
               {"name": "regex", "weight": 0.3, "pattern": "^-?[0-9]+$"}]

- `exact_match`: 1 if the answer equals the reference after normalisation (case, spaces,
  surrounding punctuation), else 0.
- `numeric`: 1 if the last number in the answer is within `tolerance` (absolute, default
  1e-6; `relative` too, default 0) of the last number in the reference, else 0.
- `regex`: 1 if the whole answer (stripped) matches `pattern`, else 0; `{reference}` in the
  pattern stands for the reference, escaped. Patterns come from task messages, so matching
  runs under a time limit (`regex`'s `timeout`) and a pattern that exceeds it scores 0.
- `verifier`: the 0-5 score of (prompt, answer) by the verifier adapter learned from the
  verification task named by `task`, divided by 5; the learner that owns the verifier
  supplies it (a `Scorer` per verification task).

Each term is a pure function of (prompt, answer, reference); `build` makes the weighted
sum (weights are normalised to sum to 1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import regex

REGEX_TIMEOUT_S = 0.05  # per match; a hostile pattern scores 0 instead of stalling the daemon
MAX_PATTERN_CHARS = 512

Scorer = Callable[[str, str], float]  # (prompt, answer) -> verifier score 0-5
Reward = Callable[[str, str, str], float]  # (prompt, answer, reference) -> [0, 1]


class RewardError(ValueError):
    """A reward declaration that cannot be used; the message names the field."""


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).strip(" .,!?;:\"'")


_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def last_number(text: str) -> float | None:
    """The last number written in `text` (thousands separators allowed), or None."""
    for token in reversed(_NUMBER.findall(text)):
        cleaned = token.replace(",", "") if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", token) \
            else token.replace(",", ".")
        try:
            value = float(cleaned)
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    return None


def exact_match(prompt: str, answer: str, reference: str) -> float:
    return float(normalise(answer) == normalise(reference))


def numeric(prompt: str, answer: str, reference: str, *, tolerance: float = 1e-6,
            relative: float = 0.0) -> float:
    got, want = last_number(answer), last_number(reference)
    if got is None or want is None:
        return 0.0
    return float(abs(got - want) <= max(tolerance, relative * abs(want)))


def regex_match(prompt: str, answer: str, reference: str, *, pattern: str) -> float:
    pat = pattern.replace("{reference}", regex.escape(reference.strip()))
    try:
        return float(regex.fullmatch(pat, answer.strip(), timeout=REGEX_TIMEOUT_S) is not None)
    except (TimeoutError, regex.error):
        return 0.0


@dataclass(frozen=True)
class Term:
    name: str
    weight: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)


# name -> (function, the parameters it takes with their types)
REGISTRY: dict[str, tuple[Callable[..., float], dict[str, type]]] = {
    "exact_match": (exact_match, {}),
    "numeric": (numeric, {"tolerance": float, "relative": float}),
    "regex": (regex_match, {"pattern": str}),
    "verifier": (lambda prompt, answer, reference: 0.0, {"task": str}),  # bound in `build`
}


def parse(spec: Any, where: str = "reward") -> tuple[Term, ...]:
    """A reward declaration (a name, or a list of {name, weight, params...}) as terms;
    raises `RewardError` naming the field that is wrong."""
    if spec is None:
        return (Term("exact_match"),)
    items = [spec] if isinstance(spec, (str, Mapping)) else spec
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise RewardError(f"{where}: expected a reward name or a non-empty list of terms")
    if len(items) > 8:
        raise RewardError(f"{where}: at most 8 terms, got {len(items)}")
    terms = []
    for i, item in enumerate(items):
        at = f"{where}.{i}" if len(items) > 1 or not isinstance(spec, (str, Mapping)) else where
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping):
            raise RewardError(f"{at}: expected a name or an object")
        name = item.get("name")
        if name not in REGISTRY:
            raise RewardError(f"{at}.name: unknown reward {name!r} (known: {', '.join(REGISTRY)})")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight <= 0:
            raise RewardError(f"{at}.weight: expected a positive number")
        takes = REGISTRY[name][1]
        params: dict[str, Any] = {}
        for key, value in item.items():
            if key in ("name", "weight"):
                continue
            if key not in takes:
                raise RewardError(f"{at}.{key}: {name} takes no parameter {key!r}")
            typ = takes[key]
            if typ is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                                 or not math.isfinite(value) or value < 0):
                raise RewardError(f"{at}.{key}: expected a non-negative number")
            if typ is str:
                if not isinstance(value, str) or not value:
                    raise RewardError(f"{at}.{key}: expected a non-empty string")
                if len(value) > MAX_PATTERN_CHARS:
                    raise RewardError(f"{at}.{key}: {len(value)} characters exceeds "
                                      f"{MAX_PATTERN_CHARS}")
                if key == "pattern":
                    try:
                        regex.compile(value.replace("{reference}", "x"))
                    except regex.error as exc:
                        raise RewardError(f"{at}.{key}: not a regular expression ({exc})") \
                            from None
            params[key] = float(value) if typ is float else value
        if name == "regex" and "pattern" not in params:
            raise RewardError(f"{at}.pattern: regex needs a pattern")
        if name == "verifier" and "task" not in params:
            raise RewardError(f"{at}.task: verifier needs the id of a learned verification task")
        terms.append(Term(name, float(weight), params))
    return tuple(terms)


def as_spec(terms: Sequence[Term]) -> list[dict[str, Any]]:
    """The terms as a declaration `parse` reads back."""
    return [{"name": t.name, "weight": t.weight, **t.params} for t in terms]


def verifier_tasks(terms: Sequence[Term]) -> list[str]:
    """The verification tasks the verifier terms name, in order, once each."""
    return list(dict.fromkeys(str(t.params["task"]) for t in terms if t.name == "verifier"))


def _verified(verifier: Scorer, prompt: str, answer: str, reference: str) -> float:
    return min(5.0, max(0.0, verifier(prompt, answer))) / 5.0


def build(terms: Sequence[Term], verifiers: Mapping[str, Scorer] | None = None) -> Reward:
    """The weighted sum of `terms` as one function (prompt, answer, reference) -> [0, 1];
    `verifiers` scores for the verification tasks the verifier terms name."""
    missing = [t for t in verifier_tasks(terms) if t not in (verifiers or {})]
    if missing:
        raise RewardError(f"reward: no verifier for the verification task {missing[0]!r}")
    total = sum(t.weight for t in terms)
    parts: list[tuple[float, Callable[[str, str, str], float]]] = []
    for t in terms:
        if t.name == "verifier":
            assert verifiers is not None
            fn: Callable[[str, str, str], float] = partial(_verified, verifiers[t.params["task"]])
        else:
            fn = partial(REGISTRY[t.name][0], **t.params)
        parts.append((t.weight / total, fn))

    def reward(prompt: str, answer: str, reference: str) -> float:
        return sum(w * fn(prompt, answer, reference) for w, fn in parts)

    return reward
