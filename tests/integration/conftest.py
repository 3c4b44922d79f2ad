"""Integration fixtures: the real embedded MiniLM, a tiny causal LM built from a config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_broker.broker import KafkaBroker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama-style LM with the MiniLM WordPiece vocabulary, randomly initialised
    (`learner.generation.model: tiny` builds the same)."""
    from synlearner.learner.model import write_tiny_causal_lm

    out = tmp_path_factory.mktemp("tiny-lm")
    write_tiny_causal_lm(out)
    return out


@pytest.fixture(scope="session")
def classifier():  # type: ignore[no-untyped-def]  # returns a torch-backed learner
    from synlearner.learner.classifier import BiEncoderClassifier
    from synlearner.learner.config import TrainConfig

    return BiEncoderClassifier(train=TrainConfig(max_steps=40, epochs=3.0))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real single-node KRaft broker for the tests of one module."""
    b = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    b.start()
    yield b
    b.stop()
