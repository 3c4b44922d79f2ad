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
from transformers import AutoModel, AutoTokenizer

from synlearner.learner.adapters import AdapterBank, peft_lora
from synlearner.learner.base import (
    LearningError,
    LearnOutcome,
    LearnPlan,
    Prediction,
    Progress,
    no_progress,
)
from synlearner.learner.config import LoraSettings, ModelConfig, TrainConfig
from synlearner.learner.model import pick_device, resolve_model_path, seed_everything
from synlearner.learner.probe import probe_starts
from synlearner.memory.base import ReplayItem, Vectors
from synlearner.stream.schema import Example, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Item:
    text: str
    label: int
    labels: tuple[str, ...]  # the label set this example is scored against
    instruction: str


class BiEncoderClassifier:
    kind = "classification"

    def __init__(self, model: ModelConfig | None = None, train: TrainConfig | None = None,
                 lora: LoraSettings | None = None, seed: int = 0) -> None:
        model = model or ModelConfig()
        self.path = resolve_model_path(model.path)
        self.settings = train or TrainConfig()
        self.seed = seed
        device = model.device
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        encoder = AutoModel.from_pretrained(str(self.path)).to(self.device)
        encoder.eval()
        self.bank = AdapterBank(encoder, peft_lora(lora or LoraSettings()), self.path)
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
                targets = torch.tensor([task.labels.index(e.output) for e in examples],
                                       device=logits.device)
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
        plan: LearnPlan,
        progress: Progress = no_progress,
    ) -> LearnOutcome:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        seed = seed_everything(self.seed, task.task_id)
        key = plan.adapter
        resume = plan.resume and self.bank.has(key)
        init_from = plan.init_from if plan.init_from and self.bank.has(plan.init_from) else None
        zero_shot = self.evaluate(task, None)
        timings["eval_before"] = time.perf_counter() - t0
        probe = None
        probe_worthy = len(task.train) >= 4 and (init_from is not None or bool(replay))
        if not resume and plan.probe_steps > 0 and probe_worthy:  # a held-out part is needed
            t = time.perf_counter()
            probe = probe_starts(self, task, replay, init_from, plan, seed)
            init_from = probe.chosen
            replay = replay if probe.replay else []
            timings["probe"] = time.perf_counter() - t
        if not resume:
            self.bank.create(key, init_from, seed)
        t = time.perf_counter()
        # a fresh LoRA adapter starts with B = 0: exactly the base model
        initial = self.evaluate(task, key) if resume or init_from else zero_shot
        timings["eval_before"] += time.perf_counter() - t
        items = self._items(task, task.train, replay)
        t1 = time.perf_counter()
        steps, loss, curve = self._train(key, items, seed, progress, self._steps(plan, items),
                                         task if plan.curve_every > 0 else None, plan.curve_every)
        timings["train"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        final = curve[-1][1] if curve and curve[-1][0] == steps else self.evaluate(task, key)
        predictions = self._predictions(task, key)
        timings["eval_after"] = time.perf_counter() - t2
        return LearnOutcome(
            zero_shot=zero_shot, initial=initial, final=final, init_from=init_from, steps=steps,
            train_examples=len(task.train), replay_examples=len(replay), train_loss=loss,
            predictions=predictions, seconds=timings, probe=probe, curve=tuple(curve),
            max_length=self.settings.max_length,
            inputs_cut=self._count_cut([e.input for e in (*task.train, *task.eval)]),
        )

    def _count_cut(self, texts: Sequence[str]) -> int:
        """Inputs longer than `max_length` tokens (the encoder reads only their start)."""
        limit = self.settings.max_length
        ids = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return sum(len(row) > limit for row in ids)

    def _steps(self, plan: LearnPlan, items: Sequence[_Item]) -> int:
        s = self.settings
        if plan.steps > 0:
            return plan.steps
        return max(1, min(s.max_steps, math.ceil(s.epochs * len(items) / s.batch_size)))

    def _score(self, task: Task, examples: Sequence[Example], adapter: str) -> tuple[float, float]:
        """Accuracy and mean cross-entropy of `adapter` on `examples`."""
        with self.bank.use(adapter):
            logits = self._logits(task, [e.input for e in examples])
        targets = torch.tensor([task.labels.index(e.output) for e in examples], device=logits.device)
        acc = float((logits.argmax(-1) == targets).float().mean())
        return acc, float(F.cross_entropy(logits, targets))

    def merge(self, sources: Sequence[str], name: str, method: str) -> None:
        self.bank.merge(list(sources), name, method)

    def _items(self, task: Task, examples: Sequence[Example],
               replay: Sequence[ReplayItem]) -> list[_Item]:
        items = [
            _Item(e.input, task.labels.index(e.output), task.labels, task.instruction)
            for e in examples
        ]
        for r in replay:
            labels = r.task.labels
            if r.task.kind == "classification" and r.record.target in labels:
                items.append(
                    _Item(r.record.input, labels.index(r.record.target), labels, r.task.instruction)
                )
        return items

    def _train(
        self, task_id: str, items: list[_Item], seed: int, progress: Progress, steps: int,
        curve_task: Task | None, curve_every: int,
    ) -> tuple[int, float, list[tuple[int, float]]]:
        """`steps` AdamW steps on `items`; eval accuracy on `curve_task` every `curve_every`."""
        s = self.settings
        curve: list[tuple[int, float]] = []
        if curve_task is not None:
            curve.append((0, self.evaluate(curve_task, task_id)))
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
                loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is untyped
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise LearningError(f"train: the loss became {value} at step {step + 1}")
                ema = value if math.isnan(ema) else 0.9 * ema + 0.1 * value
                progress("train", step + 1, steps, ema)
                if curve_task is not None and ((step + 1) % curve_every == 0 or step + 1 == steps):
                    self.bank.model.eval()
                    curve.append((step + 1, self.evaluate(curve_task, task_id)))
                    self.bank.model.train()
                    self.bank.activate(task_id, trainable=True)
        finally:
            self.bank.model.eval()
            self.bank.activate(task_id, trainable=False)
        return steps, ema, curve

    def _batch_loss(self, batch: list[_Item]) -> torch.Tensor:
        """Cross-entropy of each example over its own task's labels, averaged over the batch.

        The label sets of every task in the batch are encoded in one forward pass."""
        text_vecs = self._encode([it.text for it in batch])
        groups: dict[tuple[tuple[str, ...], str], list[int]] = {}
        for i, it in enumerate(batch):
            groups.setdefault((it.labels, it.instruction), []).append(i)
        label_texts = [t for labels, ins in groups for t in self._label_texts(labels, ins)]
        label_vecs = self._encode(label_texts)
        total = text_vecs.new_zeros(())
        offset = 0
        for (labels, _), rows in groups.items():
            vecs = label_vecs[offset : offset + len(labels)]
            offset += len(labels)
            logits = text_vecs[rows] @ vecs.T / self.settings.temperature
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
