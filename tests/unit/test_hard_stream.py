"""The hard benchmark stream (`bench/streams/hard.py`): deterministic, valid, and as described."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from synlearner.bench.streams.hard import HARD_SPECS, hard_messages, hard_stream
from synlearner.bench.streams.hard_reviews import RATINGS
from synlearner.stream import Limits, parse_task

N_TRAIN, N_EVAL = 120, 40  # small, so the tests stay fast; the rules do not depend on it


@pytest.fixture(scope="module")
def stream() -> list[dict[str, Any]]:
    return hard_stream(n_train=N_TRAIN, n_eval=N_EVAL)


def test_the_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    first = json.dumps(hard_stream(seed=3, n_train=40, n_eval=20))
    assert json.dumps(hard_stream(seed=3, n_train=40, n_eval=20)) == first
    assert json.dumps(hard_stream(seed=4, n_train=40, n_eval=20)) != first


def test_defaults_are_in_the_documented_range() -> None:
    tasks = hard_stream()
    assert len(tasks) >= 10
    for t in tasks:
        assert 500 <= len(t["train"]) <= 1000, t["task_id"]
        assert len(t["eval"]) >= 100, t["task_id"]


def test_every_label_is_valid_and_has_train_and_eval_examples(stream: list[dict[str, Any]]) -> None:
    assert [t["task_id"] for t in stream] == [s[0] for s in HARD_SPECS]
    assert len({t["task_id"] for t in stream}) == len(stream)
    for t in stream:
        labels = t["labels"]
        assert len(set(labels)) == len(labels) >= 2
        for split in ("train", "eval"):
            counts = Counter(e["output"] for e in t[split])
            assert set(counts) == set(labels), (t["task_id"], split)
            assert max(counts.values()) - min(counts.values()) <= 1, (t["task_id"], split)


def test_no_input_repeats_within_a_task(stream: list[dict[str, Any]]) -> None:
    for t in stream:
        train = [e["input"] for e in t["train"]]
        evals = [e["input"] for e in t["eval"]]
        assert len(set(train)) == len(train), t["task_id"]
        assert not set(train) & set(evals), t["task_id"]


def test_the_stream_has_what_it_promises(stream: list[dict[str, Any]]) -> None:
    by_id = {t["task_id"]: t for t in stream}
    assert max(len(t["labels"]) for t in stream) >= 10
    lengths = {tid: [len(e["input"]) for e in t["train"]] for tid, t in by_id.items()}
    long_tasks = [tid for tid, ls in lengths.items() if max(ls) > 1000]
    assert len(long_tasks) >= 2
    assert all(n <= Limits().max_field_chars for ls in lengths.values() for n in ls)
    pair_tasks = [tid for tid, t in by_id.items()
                  if all(e["input"].startswith("Sentence 1: ") and " Sentence 2: " in e["input"]
                         for e in t["train"])]
    assert len(pair_tasks) >= 2
    titled = [tid for tid, t in by_id.items()
              if all(e["input"].startswith("Title: ") and " Text: " in e["input"] for e in t["train"])]
    assert len({tuple(by_id[tid]["labels"]) for tid in titled}) >= 2  # one format, other questions
    rated = [i for i, t in enumerate(stream) if t["labels"] == RATINGS]
    assert len(rated) >= 2 and rated[-1] - rated[0] >= len(stream) // 2  # related, far apart


def test_graded_labels_follow_the_count_of_favourable_judgments() -> None:
    # the generator's own parts: k favourable judgments out of four give k + 1 stars
    import random

    from synlearner.bench.streams.hard_reviews import HOTEL, review_sentences

    rng = random.Random(0)
    for k in range(5):
        parts = review_sentences(rng, HOTEL, k, 4, 0)
        assert 4 <= len(parts) <= 5


def test_messages_parse_as_tasks_without_cuts() -> None:
    messages = hard_messages(n_train=N_TRAIN, n_eval=N_EVAL)
    assert len(messages) == len(HARD_SPECS)
    for task_id, raw in messages:
        task = parse_task(raw, Limits())
        assert task.task_id == task_id and task.kind == "classification"
        assert len(task.train) == N_TRAIN and len(task.eval) == N_EVAL
        assert not task.truncated
        assert {e.output for e in task.train} == set(task.labels)
