"""The bundled synthesis stream (`synlearner bench bundled-synthesis`): few-shot
classification tasks that arrive after a related synthesis task, generated from the hard
stream's review templates (`hard_reviews.py`), deterministic for a seed.

In stream order:
- `judge-gadgets`: gadget reviews, negative / mixed / positive (none, some or all of three
  judgments favourable), with plenty of examples: the judge of the synthesis task;
- `write-reviews`: a synthesis task on restaurant reviews with the same labels, each label
  described, an attribute pool of lengths and one of what the review dwells on, judged by
  `judge-gadgets`;
- `few-apps`, `few-hotels`: app and hotel reviews with the same labels and 8 examples per
  label, each asking `write-reviews` for synthetic examples.

The classification accuracy of the two few-shot tasks is what the synthesis strategies are
compared on (the judge and the synthesis task are learned the same way by all of them).
"""

from __future__ import annotations

import json
import random
from typing import Any

from synlearner.bench.streams.hard_reviews import APP, GADGET, HOTEL, MOODS, RESTAURANT, mood_of
from synlearner.daemon.tools.demo import Spec, make_task

FEW_SHOT = ("few-apps", "few-hotels")
DESCRIPTIONS = {"negative": "nothing about it is good", "mixed": "some things are good, "
                "others are not", "positive": "everything about it is good"}
ATTRIBUTES = {"length": ["short", "medium"], "focus": ["food", "service", "price", "place"]}

_SPECS: list[tuple[Spec, int, int]] = [  # (spec, train, eval)
    (("judge-gadgets", "Is this gadget review negative, mixed or positive?", MOODS,
      mood_of(GADGET, "gadget", 0.5), "rating"), 120, 60),
    (("write-reviews", "Write a restaurant review.", MOODS, mood_of(RESTAURANT, "restaurant", 0.5),
      "rating"), 36, 12),
    (("few-apps", "Is this app review negative, mixed or positive?", MOODS,
      mood_of(APP, "app", 0.5), "rating"), 24, 150),
    (("few-hotels", "Is this hotel review negative, mixed or positive?", MOODS,
      mood_of(HOTEL, "hotel", 0.5), "rating"), 24, 150),
]


def synthesis_stream(seed: int = 31, count: int = 48) -> list[dict[str, Any]]:
    """The stream's task messages, in order; each few-shot task asks for `count` texts."""
    rng = random.Random(seed)
    out = []
    for spec, n_train, n_eval in _SPECS:
        msg = make_task(spec, rng, n_train, n_eval, generator="synlearner-synthesis/1",
                        unique=True)
        if msg["task_id"] == "write-reviews":
            msg.update(kind="synthesis", synthesis={
                "descriptions": DESCRIPTIONS, "attributes": ATTRIBUTES, "count": 24, "shots": 2,
                "judge": "judge-gadgets"})
        elif msg["task_id"] in FEW_SHOT:
            msg["synthesize"] = {"count": count, "from": "write-reviews"}
        out.append(msg)
    return out


def synthesis_messages(seed: int = 31) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode()) for m in synthesis_stream(seed)]
