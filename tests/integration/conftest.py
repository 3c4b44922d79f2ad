"""Integration fixtures: the real embedded MiniLM, a tiny causal LM built from a config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synlearner.daemon.tools.kafka_broker import KafkaBroker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama-style LM with the MiniLM WordPiece vocabulary, randomly initialised."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from synlearner.learner.model import default_model_path

    out = tmp_path_factory.mktemp("tiny-lm")
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
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
