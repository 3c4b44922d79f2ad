"""Learners: base model, per-task LoRA adapters, training and evaluation.

Only this package imports torch, transformers, peft and trl. `synlearner.learner.base`
(the interfaces) imports none of them.
"""

from synlearner.learner.base import Learner, LearnOutcome, Prediction, Progress

__all__ = ["LearnOutcome", "Learner", "Prediction", "Progress"]
