"""The bundled generative stream: short tasks with exact answers that a small instruct model
can learn on a CPU, related by format and skill.

Arithmetic (two-digit sums, then differences, then three-digit sums far apart in the
stream, and products by a one-digit number) shares the number-only answer format and the
`numeric` reward; string transformations (reversing a word, initials of a phrase, sorting
letters, counting a letter) share the one-token answer and `exact_match`. Deterministic for
a seed; inputs are unique within a task, so no eval input is a train input.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

Rng = random.Random
Item = tuple[str, str]  # input, reference answer

_WORDS = ["planet", "garden", "silver", "window", "market", "candle", "forest", "button",
          "pencil", "rocket", "bridge", "castle", "yellow", "summer", "winter", "dragon",
          "basket", "island", "mirror", "orange", "parrot", "saddle", "tunnel", "velvet",
          "wallet", "anchor", "cotton", "ladder", "meadow", "puzzle", "rabbit", "temple"]
_PHRASES = [["new", "york", "city"], ["as", "soon", "as", "possible"], ["for", "your", "info"],
            ["by", "the", "way"], ["end", "of", "day"], ["out", "of", "office"],
            ["work", "from", "home"], ["in", "my", "opinion"], ["to", "be", "announced"],
            ["frequently", "asked", "questions"], ["do", "it", "yourself"],
            ["point", "of", "sale"], ["rest", "in", "peace"], ["not", "applicable"],
            ["central", "processing", "unit"], ["random", "access", "memory"]]


def _add2(rng: Rng) -> Item:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"{a} + {b}", str(a + b)


def _sub2(rng: Rng) -> Item:
    a, b = sorted((rng.randint(10, 99), rng.randint(10, 99)), reverse=True)
    return f"{a} - {b}", str(a - b)


def _add3(rng: Rng) -> Item:
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    return f"{a} + {b}", str(a + b)


def _mul1(rng: Rng) -> Item:
    a, b = rng.randint(2, 19), rng.randint(2, 9)
    return f"{a} x {b}", str(a * b)


def _reverse(rng: Rng) -> Item:
    word = rng.choice(_WORDS)
    if rng.random() < 0.5:
        word = word[: rng.randint(3, len(word))] + rng.choice("aeiou")
    return word, word[::-1]


def _initials(rng: Rng) -> Item:
    words = list(rng.choice(_PHRASES))
    if rng.random() < 0.6:
        words.insert(rng.randrange(len(words) + 1), rng.choice(_WORDS))
    return " ".join(words), "".join(w[0] for w in words).upper()


def _sort(rng: Rng) -> Item:
    letters = rng.sample("abcdefghijklmnopqrstuvwxyz", rng.randint(3, 6))
    return "".join(letters), "".join(sorted(letters))


def _count(rng: Rng) -> Item:
    word = rng.choice(_WORDS) + rng.choice(_WORDS)
    letter = rng.choice(sorted(set(word)))
    return f"letter '{letter}' in '{word}'", str(word.count(letter))


NUMBER_ONLY = "Answer with the number only."
NUMERIC = [{"name": "numeric"}, {"name": "regex", "pattern": "^-?[0-9]+$", "weight": 0.25}]

# task id, instruction, generator, reward, family
GEN_SPECS: list[tuple[str, str, Callable[[Rng], Item], Any, str]] = [
    ("add-two-digit", f"Add the two numbers. {NUMBER_ONLY}", _add2, NUMERIC, "arithmetic"),
    ("reverse-word", "Write the word backwards. Answer with that word only.", _reverse,
     "exact_match", "strings"),
    ("subtract-two-digit", f"Subtract the second number from the first. {NUMBER_ONLY}", _sub2,
     NUMERIC, "arithmetic"),
    ("initials", "Write the initials of the phrase in capitals. Answer with the initials only.",
     _initials, "exact_match", "strings"),
    ("multiply-by-one-digit", f"Multiply the two numbers. {NUMBER_ONLY}", _mul1, NUMERIC,
     "arithmetic"),
    ("sort-letters", "Write the letters in alphabetical order. Answer with the letters only.",
     _sort, "exact_match", "strings"),
    ("count-letter", f"How many times does the letter occur in the word? {NUMBER_ONLY}",
     _count, NUMERIC, "counting"),
    ("add-three-digit", f"Add the two numbers. {NUMBER_ONLY}", _add3, NUMERIC, "arithmetic"),
]


def generation_stream(seed: int = 29, n_train: int = 64, n_eval: int = 32) -> list[dict[str, Any]]:
    """The generative tasks in stream order, as task messages (no `phases`: the daemon's or
    the bench strategy's apply)."""
    rng = random.Random(seed)
    out = []
    for task_id, instruction, gen, reward, family in GEN_SPECS:
        seen: dict[str, str] = {}
        for _ in range(200 * (n_train + n_eval)):
            if len(seen) == n_train + n_eval:
                break
            text, answer = gen(rng)
            seen.setdefault(text, answer)
        else:
            raise ValueError(f"{task_id}: too few distinct inputs for {n_train + n_eval} examples")
        rows = [{"input": k, "output": v} for k, v in seen.items()]
        out.append({
            "schema": "synlearner.task/v1", "task_id": task_id, "kind": "generation",
            "instruction": instruction, "train": rows[:n_train], "eval": rows[n_train:],
            "reward": reward, "metadata": {"family": family, "generator": "synlearner-gen/1"},
        })
    return out


def generation_messages(seed: int = 29, n_train: int = 64,
                        n_eval: int = 32) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode())
            for m in generation_stream(seed, n_train, n_eval)]
