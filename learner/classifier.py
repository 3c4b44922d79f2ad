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
from synlearner.learner.embedding import BaseEmbedder
from synlearner.learner.model import pick_device, resolve_model_path, seed_everything
from synlearner.learner.probe import affordable, check_start, probe_starts
from synlearner.memory.base import ReplayItem
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
                 lora: LoraSettings | None = None, seed: int = 0, max_loaded: int = 0) -> None:
        model = model or ModelConfig()
        self.path = resolve_model_path(model.path)
        self.settings = train or TrainConfig()
        self.seed = seed
        device = model.device
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        encoder = AutoModel.from_pretrained(str(self.path)).to(self.device)
        encoder.eval()
        self.bank = AdapterBank(encoder, peft_lora(lora or LoraSettings()), self.path, max_loaded)
        self._embedder = BaseEmbedder(self)

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

    @torch.inference_mode()
    def _encode_all(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings of `texts` with the active adapter, in batches of similar length (less
        padding), returned in the order given."""
        if not texts:
            return torch.zeros((0, self._embedder.dim), device=self.device)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        bs = self.settings.eval_batch_size
        parts = [self._encode([texts[i] for i in order[s : s + bs]])
                 for s in range(0, len(order), bs)]
        vecs = torch.cat(parts)
        out = torch.empty_like(vecs)
        out[torch.tensor(order, device=out.device)] = vecs
        return out

    def _label_texts(self, labels: Sequence[str], instruction: str) -> list[str]:
        tpl = self.settings.label_template
        return [tpl.format(label=lab, instruction=instruction).strip() for lab in labels]

    @property
    def embedder(self) -> BaseEmbedder:
        return self._embedder

    # -- scoring -------------------------------------------------------------------------
    def _logits(self, task: Task, texts: Sequence[str], adapter: str | None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled cosine of each text with each of the task's labels (`labels`: their vectors
        under `adapter`, when the caller has them). The base model's vectors (adapter None)
        come from the embedder's cache, shared with the memory."""
        if labels is not None:
            with self.bank.use(adapter):
                vecs = self._encode_all(texts)
            return vecs @ labels.T / self.settings.temperature
        names = self._label_texts(task.labels, task.instruction)
        if adapter is None:
            vecs = torch.from_numpy(self._embedder.embed([*names, *texts])).to(self.device)
        else:
            with self.bank.use(adapter):
                vecs = self._encode_all([*names, *texts])
        return vecs[len(names):] @ vecs[: len(names)].T / self.settings.temperature

    def label_vectors(self, task: Task, adapter: str | None) -> torch.Tensor:
        """The task's label embeddings under `adapter`: a server that knows the adapter has
        not changed keeps them, and then encodes only the inputs of a request."""
        with self.bank.use(adapter):
            return self._encode_all(self._label_texts(task.labels, task.instruction))

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]:
        logits = self._logits(task, texts, adapter)
        return [task.labels[i] for i in logits.argmax(-1).tolist()]

    def label_scores(self, task: Task, texts: Sequence[str], adapter: str | None,
                     labels: torch.Tensor | None = None) -> list[dict[str, float]]:
        """Each text's probability for each of the task's labels (softmax over the scaled
        cosines `predict` takes the largest of); `labels` from `label_vectors`."""
        probs = self._logits(task, texts, adapter, labels).softmax(-1).tolist()
        return [dict(zip(task.labels, row, strict=True)) for row in probs]

    def evaluate(self, task: Task, adapter: str | None) -> float:
        return self._score(task, task.eval, adapter)[0]

    def _score(self, task: Task, examples: Sequence[Example],
               adapter: str | None) -> tuple[float, float]:
        """Accuracy and mean cross-entropy of `adapter` on `examples`."""
        return self._scores(task, [examples], adapter)[0]

    def _scores(self, task: Task, parts: Sequence[Sequence[Example]],
                adapter: str | None) -> list[tuple[float, float]]:
        """Accuracy and mean cross-entropy of `adapter` on each of `parts` (an empty part:
        0, 0), from one pass over them all."""
        flat = [e for part in parts for e in part]
        if not flat:
            return [(0.0, 0.0) for _ in parts]
        logits = self._logits(task, [e.input for e in flat], adapter)
        targets = torch.tensor([task.labels.index(e.output) for e in flat], device=logits.device)
        hits = (logits.argmax(-1) == targets).float()
        losses = F.cross_entropy(logits, targets, reduction="none")
        out, at = [], 0
        for part in parts:
            n = len(part)
            out.append((float(hits[at:at + n].mean()), float(losses[at:at + n].mean()))
                       if n else (0.0, 0.0))
            at += n
        return out

    def _harvest(self, task: Task, key: str,
                 seen: dict[int, tuple[int, float]]) -> tuple[float, list[Prediction]]:
        """Eval accuracy after training and every prediction to remember, from one pass
        over the eval split. Train-split predictions are the ones each example got the last
        time a training batch held it (`seen`: index -> (label, loss)); only the examples
        training never drew are scored again."""
        unseen = [i for i in range(len(task.train)) if i not in seen]
        examples = [*task.eval, *(task.train[i] for i in unseen)]
        logits = self._logits(task, [e.input for e in examples], key)
        targets = torch.tensor([task.labels.index(e.output) for e in examples],
                               device=logits.device)
        losses = F.cross_entropy(logits, targets, reduction="none").tolist()
        rows = logits.argmax(-1).tolist()
        n_eval = len(task.eval)
        got = {**seen, **dict(zip(unseen, zip(rows[n_eval:], losses[n_eval:], strict=True),
                                  strict=True))}
        out: list[Prediction] = []
        for split, pairs in (("train", [(ex, got[i]) for i, ex in enumerate(task.train)]),
                             ("eval", list(zip(task.eval, zip(rows[:n_eval], losses[:n_eval], strict=True),
                                               strict=True)))):
            for ex, (row, loss) in pairs:
                pred = task.labels[row]
                out.append(Prediction(split, ex.input, ex.output, pred, pred == ex.output, loss))
        correct = sum(p.correct for p in out if p.split == "eval")
        return correct / max(1, len(task.eval)), out

    # -- learning ------------------------------------------------------------------------
    def learn(
        self,
        task: Task,
        replay: Sequence[ReplayItem],
        plan: LearnPlan,
        progress: Progress = no_progress,
    ) -> LearnOutcome:
        """Score the base model, pick the start (the probe), train, then score and harvest.

        `seconds` holds `train` (the optimiser steps that made the adapter, the probe's
        winning arm included), `probe` (the probe's other arms and its held-out scoring),
        `eval_before` and `eval_after`."""
        timings: dict[str, float] = {}
        seed = seed_everything(self.seed, task.task_id)
        key = plan.adapter
        resume = plan.resume and self.bank.has(key)
        init_from = plan.init_from if plan.init_from and self.bank.has(plan.init_from) else None
        t = time.perf_counter()
        zero_shot = self.evaluate(task, None)
        timings["eval_before"] = time.perf_counter() - t
        items = self._items(task, task.train, replay)
        total, done, trained_s, loss = self._steps(plan, items), 0, 0.0, float("nan")
        probe = None
        probe_steps, check_replay = affordable(init_from, replay, plan, total)
        if not resume and probe_steps > 0 and len(task.train) >= 4:  # a held-out part is needed
            t = time.perf_counter()
            probe, winner = probe_starts(self, task, replay, init_from, probe_steps,
                                         check_replay, plan, seed)
            init_from = probe.chosen
            replay = replay if probe.replay else []
            items = self._items(task, task.train, replay)
            total = max(self._steps(plan, items), probe_steps)
            self.bank.rename(winner.adapter, key)  # training goes on from the winner
            done, trained_s, loss = probe_steps, winner.seconds, winner.loss
            timings["probe"] = time.perf_counter() - t - trained_s
        initial = None
        if not resume and probe is None:
            if init_from is not None and plan.probe_steps > 0 and task.train:
                t = time.perf_counter()
                probe, initial = check_start(self, task, init_from, plan, seed)
                init_from = probe.chosen
                timings["probe"] = time.perf_counter() - t
            self.bank.create(key, init_from, seed)
        t = time.perf_counter()
        # R[i-1][i]: the start before any training on the task (a fresh LoRA adapter has B = 0:
        # exactly the base model; a copy answers as its source, which `check_start` scored)
        start = key if resume else init_from
        if start is None:
            initial = zero_shot
        elif initial is None:
            initial = self.evaluate(task, start)
        timings["eval_before"] += time.perf_counter() - t
        t = time.perf_counter()
        steps, last_loss, curve, seen = self._train(
            key, items, seed, progress, total, task if plan.curve_every > 0 else None,
            plan.curve_every, start=done, own=len(task.train))
        loss = last_loss if steps > done else loss
        timings["train"] = trained_s + time.perf_counter() - t
        t = time.perf_counter()
        final, predictions = self._harvest(task, key, seen)
        timings["eval_after"] = time.perf_counter() - t
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
        curve_task: Task | None, curve_every: int, start: int = 0, own: int = 0,
    ) -> tuple[int, float, list[tuple[int, float]], dict[int, tuple[int, float]]]:
        """AdamW steps `start`..`steps` on `items`; eval accuracy on `curve_task` every
        `curve_every` steps. Returns the steps, the loss (moving average), the curve, and for
        each of the first `own` items the prediction (label index) and loss of the last
        batch that held it."""
        s = self.settings
        curve: list[tuple[int, float]] = []
        if curve_task is not None:
            curve.append((start, self.evaluate(curve_task, task_id)))
        self.bank.activate(task_id, trainable=True)
        params = self.bank.parameters(task_id)
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: min(1.0, (i + start + 1) / max(1, steps // 10)) * (1 - (i + start) / steps)
        )
        rng = np.random.default_rng(seed + start)
        order: list[int] = []
        seen: dict[int, tuple[int, float]] = {}
        self.bank.model.train()
        ema = float("nan")
        try:
            for step in range(start, steps):
                if len(order) < s.batch_size:
                    order += rng.permutation(len(items)).tolist()
                picked = order[: s.batch_size]
                del order[: s.batch_size]
                loss, each = self._batch_loss([items[i] for i in picked])
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is untyped
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise LearningError(f"train: the loss became {value} at step {step + 1}")
                seen.update((i, got) for i, got in zip(picked, each, strict=True) if i < own)
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
        return steps, ema, curve, seen

    def _batch_loss(self, batch: list[_Item]) -> tuple[torch.Tensor, list[tuple[int, float]]]:
        """Cross-entropy of each example over its own task's labels, averaged over the batch,
        and each example's predicted label index and loss.

        The label sets of every task in the batch are encoded in one forward pass."""
        text_vecs = self._encode([it.text for it in batch])
        groups: dict[tuple[tuple[str, ...], str], list[int]] = {}
        for i, it in enumerate(batch):
            groups.setdefault((it.labels, it.instruction), []).append(i)
        label_texts = [t for labels, ins in groups for t in self._label_texts(labels, ins)]
        label_vecs = self._encode(label_texts)
        total = text_vecs.new_zeros(())
        each: list[tuple[int, float]] = [(0, 0.0)] * len(batch)
        offset = 0
        for (labels, _), rows in groups.items():
            vecs = label_vecs[offset : offset + len(labels)]
            offset += len(labels)
            logits = text_vecs[rows] @ vecs.T / self.settings.temperature
            targets = torch.tensor([batch[i].label for i in rows], device=logits.device)
            losses = F.cross_entropy(logits, targets, reduction="none")
            total = total + losses.sum()
            for i, row, lo in zip(rows, logits.argmax(-1).tolist(), losses.tolist(), strict=True):
                each[i] = (row, lo)
        return total / len(batch), each

    # -- adapters ------------------------------------------------------------------------
    def check(self, task: Task) -> None:
        """The message schema checks all a classification task declares."""

    def has_adapter(self, task_id: str) -> bool:
        return self.bank.has(task_id)

    def drop_adapter(self, task_id: str) -> None:
        self.bank.drop(task_id)

    def save_adapter(self, task_id: str, path: Path) -> None:
        self.bank.save(task_id, path)

    def load_adapter(self, task_id: str, path: Path) -> None:
        self.bank.load(task_id, path)
