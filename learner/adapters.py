"""Per-task LoRA adapters on one resident PEFT model: add, copy, switch, save, load.

Saved adapters are the standard PEFT layout (`adapter_config.json` and
`adapter_model.safetensors`), loadable with `PeftModel.from_pretrained(base, path)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import save_file

from synlearner.learner.config import LoraSettings
from synlearner.learner.model import adapter_name
from synlearner.stream.io import replace_dir

BASE_SLOT = "slot_base"  # an untrained adapter kept so the PEFT wrapper always has one


def peft_lora(settings: LoraSettings, task_type: str | None = None) -> LoraConfig:
    """A `lora` config section as PEFT's own config (`["all-linear"]`: PEFT's shorthand)."""
    targets: str | list[str] = list(settings.target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=targets, task_type=task_type)


class AdapterBank:
    def __init__(self, model: torch.nn.Module, lora: LoraConfig, base_path: Path) -> None:
        self.lora = lora
        self.base_path = base_path
        self.model: PeftModel = get_peft_model(model, lora, adapter_name=BASE_SLOT)
        self._names: dict[str, str] = {}

    def has(self, task_id: str) -> bool:
        return task_id in self._names

    def create(self, task_id: str, init_from: str | None, seed: int) -> str:
        """Add a fresh adapter for `task_id`, or a copy of `init_from`'s weights."""
        self.drop(task_id)
        name = adapter_name(task_id)
        torch.manual_seed(seed)
        self.model.add_adapter(name, self.lora)
        if init_from is not None:
            src = self._names[init_from]
            state = get_peft_model_state_dict(self.model, adapter_name=src)
            set_peft_model_state_dict(self.model, state, adapter_name=name)
        self.model.eval()  # a new adapter's dropout modules are created in training mode
        self._names[task_id] = name
        return name

    def drop(self, task_id: str) -> None:
        name = adapter_name(task_id)
        if name in self.model.peft_config:
            self.model.set_adapter(BASE_SLOT)
            self.model.delete_adapter(name)
        self._names.pop(task_id, None)

    def merge(self, sources: list[str], key: str, method: str, density: float = 0.5) -> None:
        """Add adapter `key` merged from `sources` with PEFT's `add_weighted_adapter`.

        `ties` merges the full weight deltas (TIES: keep the largest `density` share of each
        delta, elect the sign per weight, average the agreeing ones) and factors the result
        back to a LoRA of rank r x len(sources) (capped at 64) by SVD; `linear` averages the
        deltas the same way; `cat` sums them exactly (rank r x len(sources)).
        """
        if not sources:
            raise ValueError("merge: no adapters to merge")
        self.drop(key)
        names = [self._names[s] for s in sources]
        rank = min(64, self.lora.r * len(names))
        name = adapter_name(key)
        if method == "ties":
            self.model.add_weighted_adapter(names, [1.0] * len(names), name, "ties_svd",
                                            svd_rank=rank, density=density)
        elif method == "linear":
            self.model.add_weighted_adapter(names, [1.0 / len(names)] * len(names), name, "svd",
                                            svd_rank=rank)
        elif method == "cat":
            self.model.add_weighted_adapter(names, [1.0] * len(names), name, "cat")
        else:
            raise ValueError(f"merge: unknown method {method!r} (ties, linear, cat)")
        self.model.eval()  # the merged adapter's dropout modules start in training mode
        self._names[key] = name
        self.activate(key)

    def activate(self, task_id: str, trainable: bool = False) -> None:
        name = self._names[task_id]
        self.model.set_adapter(name)
        for pname, param in self.model.named_parameters():
            param.requires_grad = trainable and f".{name}." in pname

    @contextmanager
    def use(self, task_id: str | None) -> Iterator[None]:
        """Run with `task_id`'s adapter, or with adapters disabled (the base model)."""
        if task_id is None:
            with self.model.disable_adapter():
                yield
        else:
            self.activate(task_id)
            yield

    def save(self, task_id: str, path: Path) -> None:
        """Write the adapter to `path` atomically (a temp dir swapped into place)."""
        name = self._names[task_id]

        def fill(tmp: Path) -> None:
            state = get_peft_model_state_dict(self.model, adapter_name=name)
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()},
                      tmp / "adapter_model.safetensors", metadata={"format": "pt"})
            config = self.model.peft_config[name]
            config.base_model_name_or_path = str(self.base_path)
            config.save_pretrained(str(tmp))

        replace_dir(path, fill)

    def load(self, task_id: str, path: Path) -> None:
        self.drop(task_id)
        name = adapter_name(task_id)
        self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        self.model.eval()
        self._names[task_id] = name

    def parameters(self, task_id: str) -> list[torch.nn.Parameter]:
        name = self._names[task_id]
        return [p for n, p in self.model.named_parameters() if f".{name}." in n]
