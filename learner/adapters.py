"""Per-task LoRA adapters on one resident PEFT model: add, copy, switch, save, load.

Saved adapters are the standard PEFT layout (`adapter_config.json` and
`adapter_model.safetensors`), loadable with `PeftModel.from_pretrained(base, path)`.

With `max_loaded` > 0 at most that many adapters stay in the model: the least recently used
one that has a copy on disk (it was saved or loaded, and not changed since) is unloaded, and
loaded again from there when it is next used, so a daemon that has learned thousands of
tasks holds the adapters it uses, not all of them (a merge loads all of its sources, over
the limit if need be, and unloads them after). The limit also keeps switching adapters
fast: PEFT walks every loaded adapter's layers each time.

Adding and deleting a PEFT adapter walk every layer of the model too (on MiniLM with nine
loaded, about 60 and 13 ms, and copying weights through PEFT's state-dict helpers another
35 ms), and a task adds several: its own, the probe's arms, the adapters it reloads. So an
adapter of the bank's own LoRA config is a slot: when it is dropped or unloaded, its slot
is kept (at most `FREE_SLOTS`), and the next adapter is written into it in place (fresh
weights, a copy, or a file read from disk; well under a millisecond).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTuner
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

from synlearner.learner.config import LoraSettings
from synlearner.learner.model import adapter_name
from synlearner.stream.io import replace_dir

BASE_SLOT = "slot_base"  # an untrained adapter kept so the PEFT wrapper always has one
FREE_SLOTS = 3  # emptied slots kept for reuse (a probe's arms): each one slows a switch a little


def peft_lora(settings: LoraSettings, task_type: str | None = None) -> LoraConfig:
    """A `lora` config section as PEFT's own config (`["all-linear"]`: PEFT's shorthand)."""
    targets: str | list[str] = list(settings.target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=targets, task_type=task_type)


class AdapterBank:
    def __init__(self, model: torch.nn.Module, lora: LoraConfig, base_path: Path,
                 max_loaded: int = 0) -> None:
        self.lora = lora
        self.base_path = base_path
        self.max_loaded = max_loaded  # 0: no limit
        self.model: PeftModel = get_peft_model(model, lora, adapter_name=BASE_SLOT)
        self._names: OrderedDict[str, str] = OrderedDict()  # loaded, least recently used first
        self._on_disk: dict[str, Path] = {}  # where each unchanged adapter's weights are
        self._added = 0  # PEFT names are never reused: a key may take over another's (rename)
        self._active: tuple[str, bool] | None = None  # (PEFT name, trainable) now set
        self._slots: set[str] = set()  # PEFT names of adapters with the bank's LoRA config
        self._free: list[str] = []  # slots no key holds, to be written into
        self._base_depth = 0  # nested `use(None)`: adapters are off while above 0

    def _new_name(self, task_id: str) -> str:
        self._added += 1
        self._active = None
        return f"{adapter_name(task_id)}_{self._added}"

    def _slot(self) -> str:
        """A PEFT adapter of the bank's LoRA config, freshly initialised: a free slot, or a
        new one. A free slot's weights are drawn as PEFT's `add_adapter` draws a new one's,
        the same random numbers in the same order, so the random stream after it, and every
        run, is the same either way; a copy or a file then overwrites them."""
        self._active = None
        if self._free:
            name = self._free.pop()
            for module in self.model.modules():  # an adapter of another config may have
                if isinstance(module, LoraLayer) and name in module.lora_A:  # more layers
                    _init_as_peft(module, name, self.lora)
            return name
        self._added += 1
        name = f"slot_{self._added}"
        self.model.add_adapter(name, self.lora)
        self.model.eval()  # a new adapter's dropout modules are created in training mode
        self._slots.add(name)
        return name

    def _delete(self, name: str) -> None:
        self._active = None
        if name in self._slots and len(self._free) < FREE_SLOTS:
            with torch.no_grad():  # an empty slot adds nothing, even if PEFT still has it active
                for p in self._tensors(name).values():
                    p.zero_()
            self._free.append(name)
            return
        self._slots.discard(name)
        self.model.set_adapter(BASE_SLOT)
        self.model.delete_adapter(name)

    def _tensors(self, name: str) -> dict[str, torch.nn.Parameter]:
        """Adapter `name`'s weights by their key in a saved PEFT adapter (the name left out)."""
        part = f".{name}."
        return {n.replace(part, "."): p for n, p in self.model.named_parameters() if part in n}

    def _fill(self, name: str, state: Mapping[str, torch.Tensor]) -> bool:
        """Write `state` into slot `name` if it has exactly the slot's keys and shapes."""
        into = self._tensors(name)
        if into.keys() != state.keys() or any(into[k].shape != v.shape for k, v in state.items()):
            return False
        with torch.no_grad():
            for k, p in into.items():
                p.copy_(state[k])
        return True

    def _read(self, task_id: str, path: Path) -> str:
        """Load the adapter saved at `path`: into a slot when it was saved with the bank's
        LoRA config, else as an adapter of its own config (PEFT's loader)."""
        saved = LoraConfig.from_pretrained(str(path))
        if _same_shape(saved, self.lora):
            name = self._slot()
            if self._fill(name, load_file(str(path / "adapter_model.safetensors"))):
                return name
            self._free.append(name)
        name = self._new_name(task_id)
        self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        self.model.eval()
        return name

    def has(self, task_id: str) -> bool:
        return task_id in self._names or task_id in self._on_disk

    def loaded(self) -> list[str]:
        return list(self._names)

    def _name(self, task_id: str, keep: frozenset[str] = frozenset()) -> str:
        """The PEFT name of `task_id`'s adapter, loading it from disk if it was unloaded (and
        unloading others over the limit, but for `keep`)."""
        if task_id not in self._names:
            self._names[task_id] = self._read(task_id, self._on_disk[task_id])
            self._unload_over_limit(keep=keep | {task_id})
        self._names.move_to_end(task_id)
        return self._names[task_id]

    def _unload_over_limit(self, keep: set[str] | frozenset[str]) -> None:
        if self.max_loaded <= 0:
            return
        for task_id in list(self._names):
            if len(self._names) <= self.max_loaded:
                return
            if task_id not in keep and task_id in self._on_disk:
                self._delete(self._names.pop(task_id))

    def create(self, task_id: str, init_from: str | None, seed: int) -> str:
        """Add a fresh adapter for `task_id` (PEFT's initialisation under `seed`), or a copy of
        `init_from`'s weights."""
        self.drop(task_id)
        torch.manual_seed(seed)
        name = self._slot()
        if init_from is not None:
            src = self._name(init_from)
            if not self._fill(name, {k: p.detach() for k, p in self._tensors(src).items()}):
                self._free.append(name)
                raise ValueError(f"adapter {init_from}: its LoRA shape differs from the bank's; "
                                 "it cannot start another adapter")
        self._names[task_id] = name
        self._unload_over_limit(keep={task_id, init_from or task_id})
        return name

    def drop(self, task_id: str) -> None:
        name = self._names.pop(task_id, None)
        if name is not None and name in self.model.peft_config:
            self._delete(name)
        self._on_disk.pop(task_id, None)

    def rename(self, task_id: str, new_id: str) -> None:
        """Make `task_id`'s adapter `new_id`'s (no copy); `new_id`'s old one is dropped."""
        self.drop(new_id)
        self._names[new_id] = self._names.pop(task_id)
        self._on_disk.pop(task_id, None)

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
        names = [self._name(s, keep=frozenset(sources)) for s in sources]  # all loaded at once
        rank = min(64, self.lora.r * len(names))
        name = self._new_name(key)
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
        self._unload_over_limit(keep={key})

    def activate(self, task_id: str, trainable: bool = False) -> None:
        name = self._name(task_id)
        if trainable:  # it is about to change: its copy on disk no longer stands for it
            self._on_disk.pop(task_id, None)
        if self._active != (name, trainable):  # PEFT's switch walks every adapter's layers
            self.model.set_adapter(name, inference_mode=not trainable)
            self._active = (name, trainable)

    @contextmanager
    def use(self, task_id: str | None) -> Iterator[None]:
        """Run with `task_id`'s adapter, or with adapters disabled (the base model)."""
        if task_id is None:  # not PeftModel.disable_adapter: it also walks every layer's status
            base = cast(BaseTuner, self.model.base_model)
            if self._base_depth == 0:
                base.disable_adapter_layers()
            self._base_depth += 1
            try:
                yield
            finally:
                self._base_depth -= 1
                if self._base_depth == 0:  # (it leaves the active adapter's requires_grad
                    base.enable_adapter_layers()  # on; training sets it with `activate`)
        else:
            self.activate(task_id)
            yield

    def save(self, task_id: str, path: Path, extra: Mapping[str, str] | None = None) -> None:
        """Write the adapter to `path` atomically (a temp dir swapped into place), with the
        `extra` files (name -> text) beside it."""
        name = self._name(task_id)

        def fill(tmp: Path) -> None:
            for file, text in (extra or {}).items():
                (tmp / file).write_text(text)
            state = get_peft_model_state_dict(self.model, adapter_name=name)
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()},
                      tmp / "adapter_model.safetensors", metadata={"format": "pt"})
            config = self.model.peft_config[name]
            config.base_model_name_or_path = str(self.base_path)
            config.save_pretrained(str(tmp))

        replace_dir(path, fill)
        self._on_disk[task_id] = path
        self._unload_over_limit(keep={task_id})

    def load(self, task_id: str, path: Path) -> None:
        """Make the adapter saved at `path` `task_id`'s. Under a `max_loaded` limit it is read
        when first used (its files are checked now); otherwise it is loaded at once."""
        if not (path / "adapter_model.safetensors").is_file():
            raise FileNotFoundError(f"adapter {task_id}: no adapter_model.safetensors in {path}")
        self.drop(task_id)
        self._on_disk[task_id] = path
        if self.max_loaded <= 0:
            self._name(task_id)

    def parameters(self, task_id: str) -> list[torch.nn.Parameter]:
        return list(self._tensors(self._name(task_id)).values())


def _init_as_peft(layer: LoraLayer, name: str, lora: LoraConfig) -> None:
    """Fresh weights for adapter `name` of `layer`, drawn as PEFT's `add_adapter` draws them:
    its A and B are `nn.Linear`s given torch's default initialisation before LoRA's own
    (A kaiming-uniform, B zero) replaces it (the tests check that a seed gives the same
    adapter either way)."""
    for part in (layer.lora_A[name], layer.lora_B[name]):
        torch.nn.init.kaiming_uniform_(torch.empty_like(cast(torch.nn.Linear, part).weight),
                                       a=math.sqrt(5))
    layer.reset_lora_parameters(name, lora.init_lora_weights)  # type: ignore[no-untyped-call]


def _same_shape(a: LoraConfig, b: LoraConfig) -> bool:
    """Two LoRA configs whose adapters scale alike (the layers and shapes are checked on the
    weights themselves)."""
    fields = ("r", "lora_alpha", "use_rslora", "use_dora", "rank_pattern", "alpha_pattern")
    return all(getattr(a, f, None) == getattr(b, f, None) for f in fields)
