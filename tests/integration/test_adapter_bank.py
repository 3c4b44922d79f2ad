"""The adapter bank keeps at most `max_loaded` adapters in the model; the rest reload from
disk with the weights they were saved with."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_least_recently_used_adapters_unload_and_reload_unchanged(tmp_path: Path) -> None:
    import torch
    from peft.utils import get_peft_model_state_dict
    from transformers import BertConfig, BertModel

    from synlearner.learner.adapters import AdapterBank, peft_lora
    from synlearner.learner.config import LoraSettings

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64))
    bank = AdapterBank(model, peft_lora(LoraSettings()), tmp_path, max_loaded=2)

    def weights(key: str) -> dict[str, torch.Tensor]:
        bank.activate(key)
        name = bank._name(key)
        return {k: v.clone() for k, v in get_peft_model_state_dict(bank.model, adapter_name=name).items()}

    saved = {}
    for i, key in enumerate(["a", "b", "c"]):
        bank.create(key, None, seed=i)
        for param in bank.parameters(key):
            torch.nn.init.normal_(param, std=0.1)
        saved[key] = weights(key)
        bank.save(key, tmp_path / key)
    assert bank.loaded() == ["b", "c"] and all(bank.has(k) for k in "abc")
    for key in "abc":  # "a" reloads from disk, unloading the least recently used ("b")
        got = weights(key)
        assert got.keys() == saved[key].keys()
        assert all(torch.equal(got[k], saved[key][k]) for k in got), key
        assert len(bank.loaded()) <= 2
    bank.activate("b")
    bank.activate("c")  # "a" is unloaded now
    assert "a" not in bank.loaded()
    bank.create("d", "a", seed=3)  # a copy of an unloaded adapter loads it first
    copied = weights("d")
    assert all(torch.equal(copied[k], v) for k, v in saved["a"].items())
    bank.activate("d", trainable=True)  # unsaved and changing: never unloaded
    bank.activate("b")
    bank.activate("c")
    assert "d" in bank.loaded()


def test_a_merge_of_more_adapters_than_the_limit_loads_them_all(tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    from synlearner.learner.adapters import AdapterBank, peft_lora
    from synlearner.learner.config import LoraSettings

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64))
    bank = AdapterBank(model, peft_lora(LoraSettings()), tmp_path, max_loaded=2)
    for i, key in enumerate("abcd"):
        bank.create(key, None, seed=i)
        for param in bank.parameters(key):
            torch.nn.init.normal_(param, std=0.1)
        bank.save(key, tmp_path / key)
    bank.merge(list("abcd"), "merged", "cat")
    # cat sums the four deltas exactly: its A and B stack theirs, so every source counted
    merged = bank.parameters("merged")
    assert sum(p.numel() for p in merged) == 4 * sum(p.numel() for p in bank.parameters("a"))
    assert len(bank.loaded()) <= 2 and "merged" in bank.loaded()
