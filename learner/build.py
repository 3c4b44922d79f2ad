"""Builders: plain settings in, learners out (the daemon passes values from its config)."""

from __future__ import annotations

from typing import Any

from peft import LoraConfig

from synlearner.learner.base import Learner
from synlearner.learner.classifier import BiEncoderClassifier, TrainSettings
from synlearner.learner.model import set_threads


def build_learners(
    *,
    model_path: str,
    device: str,
    threads: int,
    seed: int,
    lora: dict[str, Any],
    train: dict[str, Any],
    generation: dict[str, Any],
) -> dict[str, Learner]:
    """One learner per task kind; generation only when a causal LM path is configured."""
    set_threads(threads)
    lora_config = LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        target_modules=list(lora["target_modules"]),
    )
    classifier = BiEncoderClassifier(
        model_path, TrainSettings(seed=seed, **train), lora=lora_config, device=device
    )
    learners: dict[str, Learner] = {"classification": classifier}
    if generation.get("model_path"):
        from synlearner.learner.generation import GenerationSettings, SftGenerator

        settings = GenerationSettings(seed=seed, **{k: v for k, v in generation.items()
                                                    if k != "model_path"})
        learners["generation"] = SftGenerator(
            generation["model_path"], settings, classifier.embedder, device=device
        )
    return learners
