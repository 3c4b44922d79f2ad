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


def _tiny_bank(tmp_path: Path, r: int = 8, max_loaded: int = 0,  # type: ignore[no-untyped-def]
               targets: tuple[str, ...] = ()):
    import torch
    from transformers import BertConfig, BertModel

    from synlearner.learner.adapters import AdapterBank, peft_lora
    from synlearner.learner.config import ENCODER_LINEAR_LAYERS, LoraSettings

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64))
    model.eval()
    lora = LoraSettings(r=r, target_modules=[*ENCODER_LINEAR_LAYERS, *targets])
    return AdapterBank(model, peft_lora(lora), tmp_path, max_loaded=max_loaded)


def test_a_dropped_adapters_slot_is_written_whole_by_the_next(tmp_path: Path) -> None:
    import torch
    from peft.utils import get_peft_model_state_dict

    bank = _tiny_bank(tmp_path)

    def weights(key: str) -> dict[str, torch.Tensor]:
        name = bank._name(key)
        return {k: v.clone() for k, v in get_peft_model_state_dict(bank.model, adapter_name=name).items()}

    bank.create("a", None, seed=1)
    fresh = weights("a")
    assert all(not v.any() for k, v in fresh.items() if "lora_B" in k)  # B = 0: the base model
    assert all(v.any() for k, v in fresh.items() if "lora_A" in k)
    for param in bank.parameters("a"):
        torch.nn.init.normal_(param, std=0.1)
    slots = len(bank.model.peft_config)
    bank.drop("a")
    bank.create("b", None, seed=1)  # the same seed in a reused slot: the same fresh weights
    assert len(bank.model.peft_config) == slots
    assert all(torch.equal(v, fresh[k]) for k, v in weights("b").items())
    bank.create("other", None, seed=2)
    assert any(not torch.equal(v, fresh[k]) for k, v in weights("other").items())
    torch.manual_seed(1)  # the same seed, PEFT's own new adapter: the same weights
    bank.model.add_adapter("peft_made", bank.lora)
    made = get_peft_model_state_dict(bank.model, adapter_name="peft_made")
    assert made.keys() == fresh.keys() and all(torch.equal(made[k], fresh[k]) for k in made)

    for param in bank.parameters("b"):
        torch.nn.init.normal_(param, std=0.1)
    trained = weights("b")
    bank.create("c", "b", seed=3)  # a copy, every weight of it
    assert all(torch.equal(v, trained[k]) for k, v in weights("c").items())
    bank.save("c", tmp_path / "c")
    bank.drop("c")
    bank.drop("other")
    slots = len(bank.model.peft_config)
    bank.load("c", tmp_path / "c")  # read from disk into a free slot
    assert len(bank.model.peft_config) == slots
    assert all(torch.equal(v, trained[k]) for k, v in weights("c").items())


def test_an_adapter_of_another_lora_config_loads_as_its_own(tmp_path: Path) -> None:
    import torch
    from peft.utils import get_peft_model_state_dict

    other = _tiny_bank(tmp_path, r=4, targets=("pooler.dense",))  # a layer the bank leaves alone
    other.create("narrow", None, seed=0)
    for param in other.parameters("narrow"):
        torch.nn.init.normal_(param, std=0.1)
    other.save("narrow", tmp_path / "narrow")
    saved = get_peft_model_state_dict(other.model, adapter_name=other._name("narrow"))

    bank = _tiny_bank(tmp_path, r=8)
    bank.create("wide", None, seed=0)
    wide = {k: v.clone() for k, v in
            get_peft_model_state_dict(bank.model, adapter_name=bank._name("wide")).items()}
    bank.drop("wide")  # a free r=8 slot, which the r=4 adapter must not be written into
    bank.load("narrow", tmp_path / "narrow")
    got = get_peft_model_state_dict(bank.model, adapter_name=bank._name("narrow"))
    assert got.keys() == saved.keys()
    assert all(torch.equal(got[k], saved[k]) for k in got)
    ids = torch.tensor([[1, 5, 9, 3]])
    with bank.use("narrow"):
        mine = bank.model(input_ids=ids).last_hidden_state
    with other.use("narrow"):
        theirs = other.model(input_ids=ids).last_hidden_state
    assert torch.allclose(mine, theirs, atol=1e-6)
    # the free slot again, beside the pooler's LoRA layer that only the r=4 adapter has:
    # the same fresh weights as the slot's first adapter under the same seed
    bank.create("next", None, seed=0)
    again = get_peft_model_state_dict(bank.model, adapter_name=bank._name("next"))
    assert again.keys() == wide.keys() and all(torch.equal(again[k], wide[k]) for k in again)


def test_the_base_model_answers_with_adapters_off_even_nested(tmp_path: Path) -> None:
    import torch

    bank = _tiny_bank(tmp_path)
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        base = bank.model.get_base_model()
        bank.create("a", None, seed=0)
        for param in bank.parameters("a"):
            torch.nn.init.normal_(param, std=0.5)
        with bank.use("a"):
            adapted = bank.model(input_ids=ids).last_hidden_state
        with bank.use(None):
            plain = bank.model(input_ids=ids).last_hidden_state
            with bank.use(None):
                pass
            still = bank.model(input_ids=ids).last_hidden_state  # the inner exit kept them off
        assert not torch.allclose(adapted, plain)
        assert torch.equal(plain, still)
        with bank.use("a"):
            assert torch.equal(bank.model(input_ids=ids).last_hidden_state, adapted)
        bank.drop("a")  # its slot is kept, emptied: it must not answer for anything
        assert torch.equal(base(input_ids=ids).last_hidden_state, plain)
