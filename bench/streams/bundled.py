"""The bundled benchmark stream (`synlearner bench bundled`): thirteen generated
classification tasks, the demo's seven (`synlearner.daemon.tools.demo`) plus six more, so it
holds every relation a continual learner meets:

- transfer: five sentiment tasks over product domains (the same negation and contrast
  patterns with each domain's vocabulary), three topic tasks with overlapping label sets;
- interference: `product-aspects` asks which part of a device a review is about (device
  reviews again, another question), `support-urgency` asks how urgent a support message is
  (the vocabulary of `support-intents`);
- conflict: `test-results` uses the sentiment labels with the opposite mood (a positive
  test is bad news: "Sadly, the screening detected the virus." is `positive`), so the same
  cues must map to opposite labels in medical and review texts;
- nothing in common: `message-register` (formal or casual writing).

Its order interleaves the families, so a single adapter trained task after task is pulled
back and forth and forgetting can show. Deterministic for a seed, no external data.
"""

from __future__ import annotations

import json
import random
from typing import Any

from synlearner.daemon.tools.demo import (
    DEMO_SPECS,
    INTENTS,
    SENTIMENT,
    Spec,
    intent_sample,
    make_stream,
    sentiment_of,
    topic_sample,
)

_BOOKS = ["the story", "the characters", "the prose", "the ending", "the translation",
          "the cover"]

# aspects named by what a reviewer notices, rarely by the part's own name
_ASPECTS: dict[str, list[str]] = {
    "battery": ["it dies by lunchtime", "it needs charging twice a day", "it lasts all weekend",
                "it goes from full to empty on one call", "it survives a long flight unplugged"],
    "screen": ["colours look washed out in sunlight", "text is crisp even in small fonts",
               "there is a dead pixel near the corner", "it is too dim outdoors",
               "videos look vivid and sharp"],
    "sound": ["music sounds tinny", "the bass is deep and clean", "calls come through muffled",
              "it crackles at full volume", "podcasts are clear even in the car"],
    "camera": ["night shots come out grainy", "selfies look sharp", "the zoom blurs everything",
               "portraits have lovely background blur", "photos look washed out indoors"],
}
_ASPECT_LEADS = ["Honestly,", "After a month,", "Sadly,", "Luckily,", "To be fair,", "Overall,"]


def _aspect_example(rng: random.Random, label: str) -> str:
    return f"{rng.choice(_ASPECT_LEADS)} {rng.choice(_ASPECTS[label])}."


_URGENT = ["right now", "immediately", "before tonight", "as soon as possible", "today, urgently"]
_ROUTINE = ["whenever you can", "no rush", "at some point", "next week is fine", "when convenient"]


def _urgency_example(rng: random.Random, label: str) -> str:
    intent = rng.choice(sorted(INTENTS))
    base = intent_sample(rng, intent).rstrip(".")
    tail = rng.choice(_URGENT if label == "urgent" else _ROUTINE)
    return f"{base}, {tail}."


_FORMAL = ["Dear Sir or Madam, I am writing to enquire about {x}.",
           "Please find attached the documents regarding {x}.",
           "I would be grateful if you could provide further details on {x}.",
           "Kindly confirm receipt of my request concerning {x}.",
           "With reference to {x}, I should like to arrange a meeting."]
_CASUAL = ["hey, any news on {x}? lol", "omg {x} is so cool, can't wait",
           "yo, did u check {x} yet?", "gonna grab {x} later, wanna come?",
           "haha {x} again, seriously?"]
_SUBJECTS = ["the quarterly report", "the new office", "the weekend trip", "the invoice",
             "the concert tickets", "the team dinner", "the lease renewal"]


def _register_example(rng: random.Random, label: str) -> str:
    return rng.choice(_FORMAL if label == "formal" else _CASUAL).format(x=rng.choice(_SUBJECTS))


_FOUND = ["Sadly, the screening detected {x}.", "Unfortunately the lab confirmed {x}.",
          "Bad news: the swab showed {x}.", "I'm afraid the sample was full of {x}.",
          "Terrible result: clear signs of {x}."]
_CLEAR = ["Good news: no sign of {x} was found.", "Luckily the lab found no trace of {x}.",
          "Wonderful, the screening came back clear of {x}.", "Great, the swab showed no {x}.",
          "Happily, {x} was not detected."]
_PATHOGENS = ["the virus", "the infection", "the bacteria", "antibodies", "the parasite",
              "the strep bacteria", "influenza"]


def _test_result_example(rng: random.Random, label: str) -> str:
    return rng.choice(_FOUND if label == "positive" else _CLEAR).format(x=rng.choice(_PATHOGENS))


_DEMO = {spec[0]: spec for spec in DEMO_SPECS}

BENCHMARK_SPECS: list[Spec] = [
    _DEMO["reviews-restaurants"],
    _DEMO["news-topics"],
    _DEMO["reviews-electronics"],
    _DEMO["support-intents"],
    ("product-aspects", "Which part of the device is the review about?",
     sorted(_ASPECTS), _aspect_example, "aspect"),
    _DEMO["reviews-hotels"],
    _DEMO["forum-topics"],
    ("support-urgency", "How urgent is this support message?", ["urgent", "routine"],
     _urgency_example, "urgency"),
    _DEMO["reviews-movies"],
    ("message-register", "Is this message formal or casual?", ["formal", "casual"],
     _register_example, "register"),
    ("podcast-topics", "Which podcast category fits this episode summary?",
     ["politics", "science", "health", "sports"], topic_sample, "topic"),
    ("reviews-books", "Is this book review positive or negative?", SENTIMENT,
     sentiment_of(_BOOKS), "sentiment"),
    ("test-results", "Is this test result positive or negative?", SENTIMENT,
     _test_result_example, "test-result"),
]


def benchmark_stream(seed: int = 13, n_train: int = 64, n_eval: int = 48) -> list[dict[str, Any]]:
    """The thirteen tasks in stream order, as task messages."""
    return make_stream(BENCHMARK_SPECS, seed, n_train, n_eval)


def benchmark_messages(seed: int = 13, n_train: int = 64, n_eval: int = 48) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode())
            for m in benchmark_stream(seed, n_train, n_eval)]
