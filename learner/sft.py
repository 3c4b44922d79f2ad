"""Supervised fine-tuning on prompt/completion pairs with TRL's `SFTTrainer`: the loss on the
completion only, progress reported per step, a loss that stops being finite is an error."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]  # trl exports them lazily

from synlearner.learner.base import LearningError, Progress
from synlearner.learner.config import GenerationConfig


class ProgressCallback(TrainerCallback):
    def __init__(self, progress: Progress, total: int, phase: str = "train") -> None:
        self.progress = progress
        self.total = total
        self.phase = phase
        self.loss = float("nan")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
            if not math.isfinite(self.loss):
                raise LearningError(f"train: the loss became {self.loss} at step {state.global_step}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.progress(self.phase, state.global_step, self.total, self.loss)


def completion_dataset(tokenizer: Any, pairs: Sequence[tuple[str, str]],
                       completion_ids: Callable[[str], list[int]], max_length: int) -> Dataset:
    """Token ids of (prompt, completion) pairs, with the completion marked for the loss; each
    cut to its last `max_length` tokens."""
    rows: dict[str, list[list[int]]] = {"input_ids": [], "completion_mask": []}
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = completion_ids(completion)
        ids = (p + c)[-max_length:]
        rows["input_ids"].append(ids)
        rows["completion_mask"].append(([0] * len(p) + [1] * len(c))[-len(ids):])
    return Dataset.from_dict(rows)


def train_sft(model: Any, tokenizer: Any, dataset: Dataset, s: GenerationConfig,
              device: torch.device, steps: int, seed: int, progress: Progress,
              phase: str = "train") -> float:
    """`steps` optimiser steps of TRL's SFTTrainer on `dataset` for the trainable adapter of
    `model`; returns the last logged loss."""
    callback = ProgressCallback(progress, steps, phase)
    with tempfile.TemporaryDirectory(prefix="synlearner-sft-") as out_dir:
        args = SFTConfig(
            output_dir=out_dir, max_steps=steps, per_device_train_batch_size=s.batch_size,
            learning_rate=s.lr, lr_scheduler_type="constant", warmup_steps=0,
            logging_steps=1, save_strategy="no", report_to=[], seed=seed,
            max_length=s.max_length, completion_only_loss=True, disable_tqdm=True,
            use_cpu=device.type == "cpu", dataloader_num_workers=0,
            # TRL turns both on by default; bf16 autocast on a CPU without bf16 units made
            # a SmolLM2 step 16x slower (75 s against 4.7 s for 8 x 52 tokens on 2 cores),
            # and the wrapper stays on the model; checkpointing saves memory a 135M model
            # does not need, at the price of a second forward pass
            bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
            gradient_checkpointing=False,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset,
                             processing_class=tokenizer, callbacks=[callback])
        trainer.train()
    return callback.loss
