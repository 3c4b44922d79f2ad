"""Generation tasks through TRL's SFTTrainer on a tiny causal LM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synlearner.learner.base import LearnPlan
from synlearner.stream import Limits, parse_task

pytestmark = pytest.mark.integration

COLOURS = {"apple": "red", "banana": "yellow", "grass": "green", "sky": "blue", "snow": "white",
           "coal": "black"}


def colour_task(task_id: str = "colours") -> bytes:
    pairs = [{"input": k, "output": v} for k, v in COLOURS.items()]
    return json.dumps({
        "schema": "synlearner.task/v1", "task_id": task_id, "kind": "generation",
        "instruction": "Name the colour.", "train": pairs * 4, "eval": pairs,
    }).encode()


def test_sft_learns_a_mapping_and_adapter_reloads(tiny_causal_lm: Path, classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from synlearner.learner.config import GenerationConfig
    from synlearner.learner.generation import SftGenerator

    gen = SftGenerator(GenerationConfig(model_path=str(tiny_causal_lm), max_steps=80, batch_size=8,
                                        lr=5e-3), classifier.embedder)
    task = parse_task(colour_task(), Limits())
    steps: list[int] = []
    outcome = gen.learn(task, [], LearnPlan(task.task_id),
                        lambda phase, step, total, loss: steps.append(step))
    assert outcome.zero_shot == 0.0  # an untrained LM knows no colours
    assert outcome.final >= 0.8, outcome
    assert steps[-1] == 80
    assert len(outcome.predictions) == len(task.train) + len(task.eval)
    gen.save_adapter(task.task_id, tmp_path / "colours")
    assert (tmp_path / "colours" / "adapter_model.safetensors").exists()
    before = gen.predict(task, list(COLOURS), task.task_id)

    fresh = SftGenerator(GenerationConfig(model_path=str(tiny_causal_lm)), classifier.embedder)
    fresh.load_adapter(task.task_id, tmp_path / "colours")
    assert fresh.predict(task, list(COLOURS), task.task_id) == before
