"""The model's own right answers as replay for self-training: what memory keeps and recalls
(a real FAISS-backed memory, a hashing embedder), and how a round uses them (a scripted
generator; no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from synlearner.learner.config import SelfTrainConfig
from synlearner.learner.rewards import build, parse
from synlearner.learner.selftrain import SelfTrainer
from synlearner.memory import ExperienceMemory, HashingEmbedder, Record, TaskInfo
from synlearner.memory.base import ReplayItem, pending_id
from synlearner.memory.successes import farthest_point
from synlearner.stream.schema import Limits, parse_task


def test_farthest_point_covers_the_rows_by_hand() -> None:
    # two near-duplicates of the first row, one orthogonal row, one opposite row
    v = np.array([[1, 0], [0.995, 0.0999], [0.99, -0.141], [0, 1], [-1, 0]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert farthest_point(v, 3, 0) == [0, 4, 3]  # the opposite, then the orthogonal one
    assert farthest_point(v, 9, 0)[:3] == [0, 4, 3] and sorted(farthest_point(v, 9, 0)) == [0, 1, 2, 3, 4]
    assert farthest_point(v, 0, 0) == [] and farthest_point(v[:0], 3, 0) == []


def _sums(mem: ExperienceMemory, task_id: str, inputs: list[str]) -> None:
    mem.register_task(TaskInfo(task_id, "generation", "Add.", (), len(inputs)), inputs)


def test_memory_recalls_right_self_sampled_answers_of_related_generation_tasks_only(
        tmp_path: Path) -> None:
    mem = ExperienceMemory(tmp_path, HashingEmbedder(128))
    _sums(mem, "sums", ["17 + 25", "30 + 12", "17 + 25 again"])
    _sums(mem, "words", ["reverse cat"])
    mem.register_task(TaskInfo("topics", "classification", "?", ("a", "b"), 1), ["17 + 25 topic"])
    pending = pending_id("current", "abc")
    _sums(mem, pending, ["17 + 26"])
    mem.add([
        Record("sums", "17 + 25", "42", "experience", "self_train", "42", True),
        Record("sums", "17 + 25", "42", "experience", "self_train", "42.", True),
        Record("sums", "30 + 12", "42", "experience", "self_train", "forty-two", True),
        Record("sums", "17 + 25", "42", "error", "self_train", "41", False),  # wrong: never
        Record("sums", "17 + 25", "42", "experience", "train", "42", True),  # a train example
        Record("words", "reverse cat", "tac", "experience", "self_train", "tac", True),
        Record("topics", "17 + 25 topic", "a", "experience", "self_train", "a", True),  # a label
        Record(pending, "17 + 26", "43", "experience", "self_train", "43", True),  # uncommitted
        Record("current", "17 + 27", "44", "experience", "self_train", "44", True),  # itself
    ])
    got = mem.successes(["17 + 28", "17 + 29"], 10, exclude_task="current")
    assert sorted(r.record.prediction for r in got) == ["42", "42.", "forty-two", "tac"]
    assert all(isinstance(r, ReplayItem) and r.task.kind == "generation" for r in got)
    assert {r.task.task_id for r in got} == {"sums", "words"}
    first = mem.successes(["17 + 28"], 1, exclude_task="current")
    assert [r.record.input for r in first] == ["17 + 25"]  # the nearest first
    # of the 4 n nearest, a cover: the second answer is not the same input again
    two = mem.successes(["17 + 28"], 2, exclude_task="current")
    assert len({r.record.input for r in two}) == 2
    assert mem.successes([], 4) == [] and mem.successes(["x"], 0) == []


class ScriptedGenerator:
    """What the self-trainer needs of a generator: answers from a script, SFT recorded."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.trained: list[list[tuple[str, str]]] = []

    def sample(self, task: Any, texts: list[str], key: str, k: int, t: float) -> list[list[str]]:
        return [(self.answers[x] * k)[:k] for x in texts]

    def prompt(self, instruction: str, text: str) -> str:
        return f"{instruction} {text}"

    def replay_pairs(self, replay: list[ReplayItem]) -> list[tuple[str, str]]:
        return [(self.prompt(r.task.instruction, r.record.input), r.record.target) for r in replay]

    def _sft(self, key: str, pairs: list[tuple[str, str]], steps: int, seed: int, progress: Any,
             phase: str = "train") -> float:
        self.trained.append(list(pairs))
        return 0.5

    def evaluate(self, task: Any, key: str | None) -> float:
        return 0.25


def test_a_round_trains_on_recalled_successes_and_keeps_every_attempt() -> None:
    msg = {"schema": "synlearner.task/v1", "task_id": "sub", "kind": "generation",
           "instruction": "Subtract.", "reward": "exact_match",
           "train": [{"input": "9 - 2", "output": "7"}, {"input": "8 - 5", "output": "3"}],
           "eval": [{"input": "6 - 1", "output": "5"}]}
    task = parse_task(json.dumps(msg).encode(), Limits())
    gen = ScriptedGenerator({"9 - 2": ["7", "6"], "8 - 5": ["3", "3"]})
    cfg = SelfTrainConfig(rounds=2, prompts=2, samples=2, steps=3, search="fixed", tau=1.0,
                          past_successes=2)
    info = TaskInfo("add", "generation", "Add.", (), 3)
    recalled = [ReplayItem(Record("add", f"{i} + 1", str(i + 1), "experience", "self_train",
                                  f"{i + 1}!", True), info) for i in range(3)]
    trainer = SelfTrainer(gen, cfg, build(parse("exact_match")))  # type: ignore[arg-type]  # scripted
    rounds = trainer.run(task, "sub", [], 0, lambda *a: None, recalled)
    assert [r.past_successes for r in rounds] == [2, 2]  # at most `past_successes`
    for pairs in gen.trained:
        # the model's own answer is the target (not the reference), the first two recalled
        assert ("Add. 0 + 1", "1!") in pairs and ("Add. 1 + 1", "2!") in pairs
        assert not any(p[0] == "Add. 2 + 1" for p in pairs)
        assert ("Subtract. 9 - 2", "7") in pairs and ("Subtract. 9 - 2", "6") not in pairs
    seen = {(p.input, p.prediction, p.correct) for p in trainer.attempts}
    assert seen == {("9 - 2", "7", True), ("9 - 2", "6", False), ("8 - 5", "3", True)}
    assert all(p.split == "self_train" for p in trainer.attempts)
    off = cfg.model_copy(update={"past_successes": 0})
    none = SelfTrainer(gen, off, build(parse("exact_match")))  # type: ignore[arg-type]  # scripted
    gen.trained.clear()
    assert [r.past_successes for r in none.run(task, "sub", [], 0, lambda *a: None, recalled)] \
        == [0, 0]
    assert not any(p[0].startswith("Add.") for pairs in gen.trained for p in pairs)
