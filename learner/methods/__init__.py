"""The learning methods this daemon knows: importing this package registers each one
(`learner/method.py`); import the registry from here. A new method is a module here and a
name in the line below."""

from synlearner.learner.method import (
    REGISTRY,
    Method,
    default_methods,
    methods_of,
    stages_of,
    unknown_methods,
)
from synlearner.learner.methods import grpo, preference, self_train, sft

__all__ = ["REGISTRY", "Method", "default_methods", "grpo", "methods_of", "preference",
           "self_train", "sft", "stages_of", "unknown_methods"]
