"""Generation tasks: a causal LM with one LoRA adapter per task, trained with TRL's
`SFTTrainer` on prompt/completion pairs (loss on the completion only), evaluated by exact
match after normalisation (case, surrounding punctuation, whitespace)."""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]  # trl exports them lazily

from synlearner.learner.adapters import AdapterBank, peft_lora
from synlearner.learner.base import (
    LearningError,
    LearnOutcome,
    LearnPlan,
    Prediction,
    Progress,
    no_progress,
)
from synlearner.learner.config import GenerationConfig
from synlearner.learner.model import pick_device, resolve_model_path, seed_everything
from synlearner.memory.base import Embedder, ReplayItem
from synlearner.stream.schema import Task


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).strip(" .,!?;:\"'")


def prompt_of(instruction: str, text: str) -> str:
    return f"{instruction}\ninput: {text}\nanswer:"


class _ProgressCallback(TrainerCallback):
    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.total = total
        self.loss = float("nan")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
            if not math.isfinite(self.loss):
                raise LearningError(f"train: the loss became {self.loss} at step {state.global_step}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.progress("train", state.global_step, self.total, self.loss)


class SftGenerator:
    kind = "generation"

    def __init__(self, settings: GenerationConfig, embedder: Embedder, device: str = "auto",
                 seed: int = 0) -> None:
        if settings.model_path is None:
            raise ValueError("learner.generation.model_path: no causal LM folder is configured")
        self.path = resolve_model_path(settings.model_path)
        self.settings = settings
        self.seed = seed
        self.device = pick_device(device)
        self._embedder = embedder
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        if self.tokenizer.eos_token is None:  # e.g. a BERT-style vocabulary
            self.tokenizer.eos_token = self.tokenizer.sep_token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(str(self.path))
        model = model.to(self.device)  # type: ignore[arg-type]  # transformers' stub of .to
        model.eval()
        self.bank = AdapterBank(model, peft_lora(settings.lora, task_type="CAUSAL_LM"), self.path)

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    # -- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, task: Task, texts: Sequence[str]) -> list[str]:
        out: list[str] = []
        tok = self.tokenizer
        for start in range(0, len(texts), 32):
            prompts = [prompt_of(task.instruction, t) for t in texts[start : start + 32]]
            ids = [tok(p, add_special_tokens=False)["input_ids"][-self.settings.max_length:]
                   for p in prompts]
            width = max(len(i) for i in ids)
            input_ids = torch.tensor([[tok.pad_token_id] * (width - len(i)) + i for i in ids])
            mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
            gen = self.bank.model.generate(  # type: ignore[no-untyped-call]  # peft's stub
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                max_new_tokens=self.settings.max_new_tokens, do_sample=False,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            )
            out += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
        return [o.strip() for o in out]

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]:
        with self.bank.use(adapter):
            return self._generate(task, texts)

    def evaluate(self, task: Task, adapter: str | None) -> float:
        preds = self.predict(task, [e.input for e in task.eval], adapter)
        return float(np.mean([normalise(p) == normalise(e.output)
                              for p, e in zip(preds, task.eval, strict=True)]))

    # -- learning ------------------------------------------------------------------------
    def _dataset(self, task: Task, replay: Sequence[ReplayItem]) -> Dataset:
        tok = self.tokenizer
        pairs = [(prompt_of(task.instruction, e.input), e.output) for e in task.train]
        pairs += [(prompt_of(r.task.instruction, r.record.input), r.record.target)
                  for r in replay if r.task.kind == "generation"]
        rows: dict[str, list[list[int]]] = {"input_ids": [], "completion_mask": []}
        for prompt, completion in pairs:
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            c = tok(" " + completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids = (p + c)[-self.settings.max_length:]
            rows["input_ids"].append(ids)
            rows["completion_mask"].append(([0] * len(p) + [1] * len(c))[-len(ids):])
        return Dataset.from_dict(rows)

    def learn(self, task: Task, replay: Sequence[ReplayItem], plan: LearnPlan,
              progress: Progress = no_progress) -> LearnOutcome:
        """SFT of `plan.adapter` (no init probe and no learning curve for generation)."""
        t0 = time.perf_counter()
        seed = seed_everything(self.seed, task.task_id)
        key = plan.adapter
        resume = plan.resume and self.bank.has(key)
        init_from = plan.init_from if plan.init_from and self.bank.has(plan.init_from) else None
        if not resume:
            self.bank.create(key, init_from, seed)
        zero_shot = self.evaluate(task, None)
        initial = self.evaluate(task, key) if resume or init_from else zero_shot
        t1 = time.perf_counter()
        self.bank.activate(key, trainable=True)
        s = self.settings
        steps = plan.steps or s.max_steps
        callback = _ProgressCallback(progress, steps)
        with tempfile.TemporaryDirectory(prefix="synlearner-sft-") as out_dir:
            args = SFTConfig(
                output_dir=out_dir, max_steps=steps, per_device_train_batch_size=s.batch_size,
                learning_rate=s.lr, lr_scheduler_type="constant", warmup_steps=0,
                logging_steps=1, save_strategy="no", report_to=[], seed=seed,
                max_length=s.max_length, completion_only_loss=True, disable_tqdm=True,
                use_cpu=self.device.type == "cpu", dataloader_num_workers=0,
            )
            trainer = SFTTrainer(model=self.bank.model, args=args,
                                 train_dataset=self._dataset(task, replay),
                                 processing_class=self.tokenizer, callbacks=[callback])
            try:
                trainer.train()
            finally:
                self.bank.model.eval()
                self.bank.activate(key, trainable=False)
        t2 = time.perf_counter()
        final = self.evaluate(task, key)
        preds: list[Prediction] = []
        for split, examples in (("train", task.train), ("eval", task.eval)):
            answers = self.predict(task, [e.input for e in examples], key)
            for e, a in zip(examples, answers, strict=True):
                ok = normalise(a) == normalise(e.output)
                preds.append(Prediction(split, e.input, e.output, a, ok, 0.0))
        return LearnOutcome(
            zero_shot=zero_shot, initial=initial, final=final, init_from=init_from,
            steps=steps, train_examples=len(task.train), replay_examples=len(replay),
            train_loss=callback.loss, predictions=preds, max_length=s.max_length,
            inputs_cut=self._count_cut(task),
            seconds={"eval_before": t1 - t0, "train": t2 - t1,
                     "eval_after": time.perf_counter() - t2},
        )

    def _count_cut(self, task: Task) -> int:
        """Examples whose prompt and answer exceed `max_length` tokens (their start is cut)."""
        texts = [prompt_of(task.instruction, e.input) + " " + e.output
                 for e in (*task.train, *task.eval)]
        ids = self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        return sum(len(row) > self.settings.max_length for row in ids)

    def merge(self, sources: Sequence[str], name: str, method: str) -> None:
        self.bank.merge(list(sources), name, method)

    def has_adapter(self, task_id: str) -> bool:
        return self.bank.has(task_id)

    def save_adapter(self, task_id: str, path: Path) -> None:
        self.bank.save(task_id, path)

    def load_adapter(self, task_id: str, path: Path) -> None:
        self.bank.load(task_id, path)
