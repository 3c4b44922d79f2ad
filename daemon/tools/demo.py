"""The demo stream of `synlearner demo`: seven related text-classification tasks,
generated from templates, deterministic for a seed, in the project (no external data).

Sentiment tasks share structure across product domains (the same negation and "but
overall" patterns with domain vocabulary), topic tasks share labels and part of their
vocabulary, and one intent task stands apart. Negations ("not bad at all") and contrastive
sentences ("the room was dirty, but overall a lovely stay") make the base model's zero-shot
answer wrong often enough that learning, and transfer between the sentiment tasks, show in
the accuracy matrix.

The template machinery here (`Spec`, `Gen`, `Rng`, `cap`, `make_task`, `make_stream`) and
the demo's tasks are also what the benchmark's generated streams are built from
(`synlearner.bench.streams`: the bundled stream holds the demo's seven tasks and six more).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

_POS = ["great", "excellent", "wonderful", "superb", "delightful", "fantastic", "solid"]
_NEG = ["terrible", "awful", "disappointing", "poor", "dreadful", "mediocre", "broken"]
_POS_NEGATED = ["not bad at all", "never disappointing", "far from mediocre", "not a letdown"]
_NEG_NEGATED = ["not good at all", "hardly impressive", "far from great", "not worth it"]
_POS_OVERALL = ["overall I loved it", "overall a lovely experience", "I would happily return"]
_NEG_OVERALL = ["overall a waste of money", "I will never come back", "overall I regret it"]

DOMAINS: dict[str, list[str]] = {
    "restaurants": ["the food", "the pasta", "the service", "the dessert", "the waiter", "the wine list"],
    "electronics": ["the battery", "the screen", "the charger", "the keyboard", "the camera", "the speaker"],
    "hotels": ["the room", "the bed", "the breakfast", "the front desk", "the pool", "the view"],
    "movies": ["the plot", "the acting", "the soundtrack", "the ending", "the dialogue", "the pacing"],
}


def _sentiment_example(rng: random.Random, aspects: list[str], label: str) -> str:
    pos = label == "positive"
    a, b = rng.sample(aspects, 2)
    style = rng.randrange(4)
    if style == 0:
        return f"{a.capitalize()} was {rng.choice(_POS if pos else _NEG)}."
    if style == 1:
        return f"{a.capitalize()} was {rng.choice(_POS_NEGATED if pos else _NEG_NEGATED)}."
    opposite = rng.choice(_NEG if pos else _POS)
    overall = rng.choice(_POS_OVERALL if pos else _NEG_OVERALL)
    if style == 2:
        return f"{a.capitalize()} was {opposite}, but {overall}."
    return f"Although {b} was {opposite}, {overall}; {a} was {rng.choice(_POS if pos else _NEG)}."


TOPIC_WORDS: dict[str, list[str]] = {
    "sports": ["the team", "the coach", "the match", "the league", "the striker", "the final score",
               "the season", "a record", "the stadium", "the transfer window"],
    "politics": ["the senate", "the election", "the minister", "a new bill", "the campaign",
                 "the parliament", "the vote", "a record", "the budget", "the opposition"],
    "technology": ["the software", "the chip", "a new phone", "the startup", "the data center",
                   "the update", "the network", "the algorithm", "the budget", "the data"],
    "science": ["the study", "the researchers", "the telescope", "a new species", "the experiment",
                "the data", "the lab", "the vaccine trial", "the algorithm", "the theory"],
    "health": ["the clinic", "the patients", "the doctors", "the diet", "the vaccine trial",
               "the hospital", "the study", "the treatment", "sleep habits", "the season"],
}
_TOPIC_VERBS = ["made headlines after", "was discussed following", "drew attention with",
                "surprised observers with", "changed course after"]
_TOPIC_TAILS = ["a long debate", "weeks of speculation", "a surprising announcement",
                "new numbers released on Monday", "an unexpected decision"]


def _topic_example(rng: random.Random, label: str) -> str:
    a, b = rng.sample(TOPIC_WORDS[label], 2)
    return f"{a.capitalize()} {rng.choice(_TOPIC_VERBS)} {rng.choice(_TOPIC_TAILS)} about {b}."


INTENTS: dict[str, list[str]] = {
    "refund": ["I want my money back for {x}", "please refund {x}", "can I return {x} for a refund",
               "charge me back for {x}, it was wrong"],
    "delivery": ["where is {x}, it never arrived", "{x} is late again", "the courier lost {x}",
                 "tracking for {x} has not moved in days"],
    "account": ["I cannot log in to check {x}", "reset my password so I can see {x}",
                "my account is locked since I ordered {x}", "two-factor code not arriving for {x}"],
    "product": ["does {x} come in blue", "is {x} compatible with my laptop",
                "how big is {x} exactly", "what warranty does {x} have"],
}
_ITEMS = ["my order", "the blender", "the headphones", "the jacket", "the desk lamp", "the kettle"]


def intent_sample(rng: random.Random, label: str) -> str:
    return rng.choice(INTENTS[label]).format(x=rng.choice(_ITEMS)).capitalize() + "."


Gen = Callable[[random.Random, str], str]
Spec = tuple[str, str, list[str], Gen, str]  # task id, instruction, labels, generator, family
Rng = random.Random


def cap(text: str) -> str:
    """`text` with its first letter upper-case (`str.capitalize` lowers the rest)."""
    return text[:1].upper() + text[1:]


def make_task(spec: Spec, rng: Rng, n_train: int, n_eval: int,
              generator: str = "synlearner-demo/1", unique: bool = False) -> dict[str, Any]:
    """A task message from `spec`; the labels take turns, so every label has its share of
    both splits. With `unique`, every input is different (no eval input is a train input)."""
    task_id, instruction, labels, gen, family = spec
    seen: set[str] = set()

    def draw(label: str) -> str:
        for _ in range(1000 if unique else 1):
            text = gen(rng, label)
            if text not in seen:
                break
        else:
            raise ValueError(f"{task_id}: the templates ran out of distinct {label!r} inputs")
        if unique:
            seen.add(text)
        return text

    def split(n: int) -> list[dict[str, str]]:
        out = [{"input": draw(labels[i % len(labels)]), "output": labels[i % len(labels)]}
               for i in range(n)]
        rng.shuffle(out)
        return out

    return {
        "schema": "synlearner.task/v1", "task_id": task_id, "kind": "classification",
        "instruction": instruction, "labels": labels, "train": split(n_train),
        "eval": split(n_eval), "metadata": {"family": family, "generator": generator},
    }


def sentiment_of(aspects: list[str]) -> Gen:
    return lambda r, lab: _sentiment_example(r, aspects, lab)


def topic_sample(r: random.Random, lab: str) -> str:
    return _topic_example(r, lab)


SENTIMENT = ["positive", "negative"]
DEMO_SPECS: list[Spec] = [
    ("reviews-restaurants", "Is this restaurant review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["restaurants"]), "sentiment"),
    ("news-topics", "Which section does this news snippet belong to?",
     ["sports", "politics", "technology", "science"], topic_sample, "topic"),
    ("reviews-electronics", "Is this product review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["electronics"]), "sentiment"),
    ("support-intents", "What does the customer want?",
     ["refund", "delivery", "account", "product"], intent_sample, "intent"),
    ("reviews-hotels", "Is this hotel review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["hotels"]), "sentiment"),
    ("forum-topics", "Which forum board does this post belong to?",
     ["sports", "technology", "science", "health"], topic_sample, "topic"),
    ("reviews-movies", "Is this film review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["movies"]), "sentiment"),
]


def make_stream(specs: list[Spec], seed: int, n_train: int, n_eval: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_task(spec, rng, n_train, n_eval) for spec in specs]


def demo_stream(seed: int = 7, n_train: int = 96, n_eval: int = 60) -> list[dict[str, Any]]:
    """Seven tasks in stream order, as task messages."""
    return make_stream(DEMO_SPECS, seed, n_train, n_eval)


def demo_messages(seed: int = 7) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode()) for m in demo_stream(seed)]
