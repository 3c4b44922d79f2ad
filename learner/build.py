"""Builders: the `learner` config section in, one learner per task kind out."""

from __future__ import annotations

from synlearner.learner.base import Learner
from synlearner.learner.classifier import BiEncoderClassifier
from synlearner.learner.config import LearnerConfig
from synlearner.learner.model import set_threads


def build_learners(cfg: LearnerConfig) -> dict[str, Learner]:
    """One learner per task kind: classification always; generation, preference,
    verification and synthesis (one causal LM for the four; synthesis is judged by the
    classifier) unless `learner.generation.model` is "none" (its model loads when the first
    of those tasks needs it)."""
    set_threads(cfg.model.threads)
    classifier = BiEncoderClassifier(cfg.model, cfg.train, cfg.lora, cfg.seed,
                                     max_loaded=cfg.max_loaded_adapters)
    learners: dict[str, Learner] = {"classification": classifier}
    if cfg.generation.model != "none":
        from synlearner.learner.generation import KINDS, SftGenerator
        from synlearner.learner.synth_learner import SynthesisLearner

        generator = SftGenerator(cfg.generation, classifier.embedder, cfg.model.device, cfg.seed)
        learners.update(dict.fromkeys(KINDS, generator))  # one model for the three kinds
        learners["synthesis"] = SynthesisLearner(generator, classifier)  # and its adapters
    return learners
