"""Bi-encoder classification on a sentence encoder with one LoRA adapter per task.

An input is scored against each of its task's labels by cosine similarity between the
input's embedding and the label's embedding (`label_template`, e.g. "{label}"), scaled by
`1 / temperature`; training minimises cross-entropy over the task's own labels. No head
per task: the base model answers zero-shot, replayed examples from other tasks train the
same adapter with their own label sets, and adapters stay mergeable.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig
from transformers import AutoModel, AutoTokenizer

from synlearner.learner.adapters import AdapterBank
from synlearner.learner.base import LearnOutcome, Prediction, Progress, no_progress
from synlearner.learner.model import pick_device, resolve_model_path, seed_everything
from synlearner.memory.base import ReplayItem, Vectors
from synlearner.stream.schema import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    epochs: float = 3.0
    max_steps: int = 120
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    temperature: float = 0.05
    max_length: int = 128
    eval_batch_size: int = 64
    label_template: str = "{label}"
    seed: int = 0


@dataclass(frozen=True)
class _Item:
    text: str
    label: int
    labels: tuple[str, ...]  # the label set this example is scored against
    instruction: str


def _default_lora() -> LoraConfig:
    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "value"])


class BiEncoderClassifier:
    kind = "classification"

    def __init__(
        self,
        model_path: str | None = None,
        settings: TrainSettings | None = None,
        lora: LoraConfig | None = None,
        device: str = "auto",
    ) -> None:
        self.path = resolve_model_path(model_path)
        self.settings = settings or TrainSettings()
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        encoder = AutoModel.from_pretrained(str(self.path)).to(self.device)
        encoder.eval()
        self.bank = AdapterBank(encoder, lora or _default_lora(), self.path)
        self._embedder = _BaseEmbedder(self)

    # -- encoding ------------------------------------------------------------------------
    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.settings.max_length,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.bank.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def _label_texts(self, labels: Sequence[str], instruction: str) -> list[str]:
        tpl = self.settings.label_template
        return [tpl.format(label=lab, instruction=instruction).strip() for lab in labels]

    @property
    def embedder(self) -> _BaseEmbedder:
        return self._embedder

    # -- scoring -------------------------------------------------------------------------
    @torch.no_grad()
    def _logits(self, task: Task, texts: Sequence[str]) -> torch.Tensor:
        label_vecs = self._encode(self._label_texts(task.labels, task.instruction))
        out = []
        bs = self.settings.eval_batch_size
        for start in range(0, len(texts), bs):
            vecs = self._encode(texts[start : start + bs])
            out.append(vecs @ label_vecs.T / self.settings.temperature)
        return torch.cat(out) if out else torch.zeros((0, len(task.labels)))

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]:
        with self.bank.use(adapter):
            logits = self._logits(task, texts)
        return [task.labels[i] for i in logits.argmax(-1).tolist()]

    def evaluate(self, task: Task, adapter: str | None) -> float:
        preds = self.predict(task, [e.input for e in task.eval], adapter)
        return float(np.mean([p == e.output for p, e in zip(preds, task.eval, strict=True)]))

    def _predictions(self, task: Task, adapter: str) -> list[Prediction]:
        out: list[Prediction] = []
        with self.bank.use(adapter):
            for split, examples in (("train", task.train), ("eval", task.eval)):
                logits = self._logits(task, [e.input for e in examples])
                targets = torch.tensor([task.labels.index(e.output) for e in examples])
                losses = F.cross_entropy(logits, targets, reduction="none").tolist()
                for ex, row, loss in zip(examples, logits.argmax(-1).tolist(), losses, strict=True):
                    pred = task.labels[row]
                    out.append(Prediction(split, ex.input, ex.output, pred, pred == ex.output, loss))
        return out

    # -- learning ------------------------------------------------------------------------
    def learn(
        self,
        task: Task,
        replay: Sequence[ReplayItem],
        init_from: str | None,
        progress: Progress = no_progress,
    ) -> LearnOutcome:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        seed = seed_everything(self.settings.seed, task.task_id)
        if init_from is not None and not self.bank.has(init_from):
            init_from = None
        self.bank.create(task.task_id, init_from, seed)
        zero_shot = self.evaluate(task, None)
        initial = self.evaluate(task, task.task_id) if init_from else zero_shot
        timings["eval_before"] = time.perf_counter() - t0
        items = self._items(task, replay)
        t1 = time.perf_counter()
        steps, loss = self._train(task.task_id, items, seed, progress)
        timings["train"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        final = self.evaluate(task, task.task_id)
        predictions = self._predictions(task, task.task_id)
        timings["eval_after"] = time.perf_counter() - t2
        return LearnOutcome(
            zero_shot=zero_shot, initial=initial, final=final, init_from=init_from, steps=steps,
            train_examples=len(task.train), replay_examples=len(replay), train_loss=loss,
            predictions=predictions, seconds=timings,
        )

    def _items(self, task: Task, replay: Sequence[ReplayItem]) -> list[_Item]:
        items = [
            _Item(e.input, task.labels.index(e.output), task.labels, task.instruction)
            for e in task.train
        ]
        for r in replay:
            labels = r.task.labels
            if r.task.kind == "classification" and r.record.target in labels:
                items.append(
                    _Item(r.record.input, labels.index(r.record.target), labels, r.task.instruction)
                )
        return items

    def _train(
        self, task_id: str, items: list[_Item], seed: int, progress: Progress
    ) -> tuple[int, float]:
        s = self.settings
        steps = max(1, min(s.max_steps, math.ceil(s.epochs * len(items) / s.batch_size)))
        self.bank.activate(task_id, trainable=True)
        params = self.bank.parameters(task_id)
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: min(1.0, (i + 1) / max(1, steps // 10)) * (1 - i / steps)
        )
        rng = np.random.default_rng(seed)
        order: list[int] = []
        self.bank.model.train()
        ema = float("nan")
        try:
            for step in range(steps):
                if len(order) < s.batch_size:
                    order += rng.permutation(len(items)).tolist()
                batch = [items[i] for i in order[: s.batch_size]]
                del order[: s.batch_size]
                loss = self._batch_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                value = float(loss.detach())
                ema = value if math.isnan(ema) else 0.9 * ema + 0.1 * value
                progress("train", step + 1, steps, ema)
        finally:
            self.bank.model.eval()
            self.bank.activate(task_id, trainable=False)
        return steps, ema

    def _batch_loss(self, batch: list[_Item]) -> torch.Tensor:
        """Cross-entropy of each example over its own task's labels, averaged over the batch."""
        text_vecs = self._encode([it.text for it in batch])
        groups: dict[tuple[tuple[str, ...], str], list[int]] = {}
        for i, it in enumerate(batch):
            groups.setdefault((it.labels, it.instruction), []).append(i)
        total = text_vecs.new_zeros(())
        for (labels, instruction), rows in groups.items():
            label_vecs = self._encode(self._label_texts(labels, instruction))
            logits = text_vecs[rows] @ label_vecs.T / self.settings.temperature
            targets = torch.tensor([batch[i].label for i in rows], device=logits.device)
            total = total + F.cross_entropy(logits, targets, reduction="sum")
        return total / len(batch)

    # -- adapters ------------------------------------------------------------------------
    def has_adapter(self, task_id: str) -> bool:
        return self.bank.has(task_id)

    def save_adapter(self, task_id: str, path: Path) -> None:
        self.bank.save(task_id, path)

    def load_adapter(self, task_id: str, path: Path) -> None:
        self.bank.load(task_id, path)


class _BaseEmbedder:
    """The memory's embedder: the base encoder with adapters disabled (stable vectors)."""

    def __init__(self, owner: BiEncoderClassifier) -> None:
        self._owner = owner
        self._dim = int(owner.bank.model.config.hidden_size)

    @property
    def dim(self) -> int:
        return self._dim

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> Vectors:
        owner = self._owner
        out = []
        with owner.bank.use(None):
            for start in range(0, len(texts), owner.settings.eval_batch_size):
                out.append(owner._encode(texts[start : start + owner.settings.eval_batch_size]))
        if not out:
            return np.zeros((0, self._dim), dtype=np.float32)
        return torch.cat(out).float().cpu().numpy().astype(np.float32)
