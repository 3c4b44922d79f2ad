"""The bundled generative stream: deterministic, valid, exact answers a reward recognises."""

from __future__ import annotations

import re

from synlearner.bench.streams.generative import generation_messages, generation_stream
from synlearner.learner import rewards
from synlearner.stream import Limits, parse_task


def test_deterministic_valid_and_disjoint() -> None:
    assert generation_stream(3) == generation_stream(3)
    assert generation_stream(3) != generation_stream(4)
    for task_id, raw in generation_messages(seed=3, n_train=40, n_eval=20):
        task = parse_task(raw, Limits())
        assert task.task_id == task_id and task.kind == "generation"
        assert (len(task.train), len(task.eval)) == (40, 20)
        assert not {e.input for e in task.train} & {e.input for e in task.eval}
        rewards.parse(task.reward)  # every declared reward parses


def test_answers_are_right_and_scored_by_their_reward() -> None:
    for msg in generation_stream(5, n_train=30, n_eval=10):
        reward = rewards.build(rewards.parse(msg["reward"]))
        for row in msg["train"]:
            text, answer = row["input"], row["output"]
            if m := re.fullmatch(r"(\d+) ([-+x]) (\d+)", text):
                a, op, b = int(m[1]), m[2], int(m[3])
                assert int(answer) == {"+": a + b, "-": a - b, "x": a * b}[op]
            assert reward(text, answer, answer) == 1.0
            assert reward(text, answer + "0", answer) < 1.0
        if msg["task_id"] == "reverse-word":
            assert all(r["output"] == r["input"][::-1] for r in msg["train"])
        if msg["task_id"] == "sort-letters":
            assert all(r["output"] == "".join(sorted(r["input"])) for r in msg["train"])
