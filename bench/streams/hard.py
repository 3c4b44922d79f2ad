"""The hard benchmark stream (`synlearner bench hard`): eleven generated tasks, deterministic
for a seed, built so that continual-learning strategies differ on them: graded 5-level
ratings of hotel, restaurant and app reviews (hotel reviews with a long tail past 1,000
characters), a 12-section news task and an 8-board forum task, three sentence-pair tasks,
a three-way gadget sentiment task, and two questions on one incident-report format (they
share a surface format and nothing learnable). Related tasks are far apart in the stream.
`HARD_SPECS` lists them with the rule that decides each label.
"""

from __future__ import annotations

import json
import random
from typing import Any

from synlearner.bench.streams.hard_pairs import (
    CIVIC,
    EVERYDAY,
    PARAPHRASE,
    WORKPLACE,
    inference_of,
    paraphrase_of,
)
from synlearner.bench.streams.hard_reviews import (
    APP,
    GADGET,
    HOTEL,
    MOODS,
    RATINGS,
    RESTAURANT,
    mood_of,
    rating_of,
)
from synlearner.bench.streams.hard_texts import (
    COMPONENTS,
    FORUM_BOARDS,
    NEWS_SECTIONS,
    SEVERITIES,
    component_sample,
    forum_sample,
    news_sample,
    severity_sample,
)
from synlearner.daemon.tools.demo import Spec, make_task

NLI = ["entailment", "neutral", "contradiction"]
CLAIMS = ["supported", "not mentioned", "refuted"]

HARD_SPECS: list[Spec] = [
    ("hotel-ratings", "How many stars does this hotel review give?", RATINGS,
     rating_of(HOTEL, "hotel", (1, 2), 0.5, long_tail=True), "rating"),
    ("news-sections", "Which section of the paper does this article belong to?", NEWS_SECTIONS,
     news_sample, "topic"),
    ("everyday-inference", "Does the second sentence follow from the first, contradict it, or "
     "neither?", NLI, inference_of(EVERYDAY, NLI), "pair"),
    ("incident-severity", "How severe is the incident in this ticket?", SEVERITIES,
     severity_sample, "ticket"),
    ("gadget-sentiment", "Is this gadget review negative, mixed or positive?", MOODS,
     mood_of(GADGET, "gadget", 0.5), "rating"),
    ("office-paraphrase", "Do the two sentences mean the same?", PARAPHRASE,
     paraphrase_of(WORKPLACE), "pair"),
    ("restaurant-ratings", "How many stars does this restaurant review give?", RATINGS,
     rating_of(RESTAURANT, "restaurant", (1, 3), 0.5), "rating"),
    ("forum-boards", "Which board of the forum is this post for?", FORUM_BOARDS,
     forum_sample, "topic"),
    ("incident-component", "Which component caused the incident in this ticket?", COMPONENTS,
     component_sample, "ticket"),
    ("council-claims", "Is the claim in the second sentence supported by the first, refuted, "
     "or not mentioned?", CLAIMS, inference_of(CIVIC, CLAIMS), "pair"),
    ("app-ratings", "How many stars does this app review give?", RATINGS,
     rating_of(APP, "app", (0, 1), 0.5), "rating"),
]


def hard_stream(seed: int = 17, n_train: int = 600, n_eval: int = 200) -> list[dict[str, Any]]:
    """The eleven tasks of the hard benchmark stream in stream order, as task messages."""
    rng = random.Random(seed)
    return [make_task(spec, rng, n_train, n_eval, "synlearner-hard/1", unique=True)
            for spec in HARD_SPECS]


def hard_messages(seed: int = 17, n_train: int = 600, n_eval: int = 200) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode()) for m in hard_stream(seed, n_train, n_eval)]
