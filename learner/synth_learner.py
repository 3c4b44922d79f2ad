"""Synthesis tasks (SynLearner): a LoRA adapter of the causal LM that writes texts of given
labels, learned task after task on the one resident model of `SftGenerator`.

A synthesis task's examples are labelled texts (`input` the text, `output` its label); its
`synthesis` section (`stream.schema.SynthesisSpec`) describes the labels and the attribute
pools, and names the judge. Learning it runs the training its methods add (its own
`methods`, else `learner.generation.synthesis.methods`: `sft`, then `grpo`), each on the
task's adapter:

- the start: a copy of the nearest past synthesis task's adapter (`plan.init_from`) is kept
  only if a sample of the task's train texts (which neither start has seen) is likelier
  under it than under a fresh adapter (which is the base model: LoRA starts at zero), else
  the task starts fresh;
- `sft`: SFT on the task's texts, each the completion of the request for its label (the
  label, its description and few-shot texts of the label drawn from the other train
  examples; no attributes, since the examples do not say theirs), plus replay of past
  synthesis tasks' texts;
- `grpo`: group relative policy optimisation on the diversity-aware plan
  (`learner.synthesis.make_plan`: `count` label-balanced requests, each with a combination
  of attribute values and few-shot draws). A step takes `prompts_per_step` requests,
  samples `group` texts for each and scores each text with the hierarchical reward (label
  credit from the judge, attribute rules, quality rules, diversity within its group,
  weighted by the schedule at this step); the advantages are the rewards normalised within
  each group, and the loss is -advantage x the text's mean token log-probability (beta 0:
  no reference model; one policy step per batch, so PPO's clipped ratio is 1). Texts the
  judge does not give their intended label go to the error memory, the others to the
  experience memory as the model's own attempts.

The judge is the classification learner: the adapter of the classification task the spec
names (`plan.judge`, resolved by the daemon), else the base encoder zero-shot on the task's
labels. The score of a synthesis task is the label agreement of one greedy text per eval
example, requested for the example's label with attribute values of a balanced plan and
few-shot texts from the train split: a text counts when the judge ranks the intended label
first and it passes the quality rules (at least `min_words` words, and not a copy of any
train text of the label: memorising is not synthesising).

TRL's `GRPOTrainer` is not used: it patches the model's forward with a fused LM head each
time it is built and never takes it off (the bank keeps one resident model for every task),
and it trains through its own generation and dataset loop where this loop reuses the
learner's batched `generate`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synlearner.learner import synthesis as S
from synlearner.learner.base import (
    Judge,
    LearnOutcome,
    LearnPlan,
    Prediction,
    Progress,
    StageResult,
    no_progress,
)
from synlearner.learner.classifier import BiEncoderClassifier
from synlearner.learner.dpo import answer_logps, answer_sequences
from synlearner.learner.generation import SftGenerator
from synlearner.learner.grpo import Written
from synlearner.learner.methods import stages_of
from synlearner.learner.model import seed_everything
from synlearner.learner.refine import Refined, refine
from synlearner.learner.sft import completion_dataset, train_sft
from synlearner.memory.base import Embedder, ReplayItem
from synlearner.stream.schema import SynthesisSpec, Task

log = logging.getLogger("synlearner.learner")
JUDGE_FILE = "synlearner-judge.json"  # beside a synthesis adapter's weights: its judge
START_TEXTS = 32  # train texts at most that the start check scores


def zero_shot_judge(task: Task) -> Judge:
    """The base encoder judging the task's own labels."""
    return Judge.of(f"{task.task_id}.judge", "", task.labels)


def spec_of(task: Task) -> SynthesisSpec:
    return SynthesisSpec.model_validate(task.synthesis or {})


class SynthesisLearner:
    """The learner of `synthesis` tasks: the generator's model and bank, the classifier as
    the judge."""

    kind = "synthesis"

    def __init__(self, generator: SftGenerator, classifier: BiEncoderClassifier) -> None:
        self.gen = generator
        self.classifier = classifier
        self.settings = generator.settings.synthesis
        self._judges: dict[str, Judge] = {}  # synthesis task id -> its judge

    @property
    def embedder(self) -> Embedder:
        return self.gen.embedder

    # -- requests, writing and judging ---------------------------------------------------
    def _pool(self, task: Task) -> list[tuple[str, str]]:
        """The few-shot pool: the train texts (cut to `max_shot_chars`) with their labels."""
        cap = self.settings.max_shot_chars
        return [(e.input[:cap], e.output) for e in task.train]

    def _request(self, task: Task, spec: SynthesisSpec, item: S.PlanItem) -> str:
        return S.prompt_text(task.instruction, item, spec.descriptions.get(item.label, ""))

    def _write(self, requests: Sequence[str], k: int, temperature: float) -> list[list[str]]:
        """`k` texts per request with the active adapter."""
        cfg = self.settings
        return self.gen.generate("", requests, k, temperature, cfg.max_new_tokens, cfg.max_length)

    def judge_of(self, task: Task) -> Judge:
        return self._judges.get(task.task_id) or zero_shot_judge(task)

    def rank(self, judge: Judge, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """The judge's labels for each text, most likely first."""
        if not texts:
            return []
        adapter = judge.adapter if judge.adapter and self.classifier.has_adapter(judge.adapter) \
            else None
        rows = self.classifier.label_scores(judge.task, [t or " " for t in texts], adapter)
        return [tuple(sorted(row, key=row.__getitem__, reverse=True)) for row in rows]

    def _judged(self, task: Task, items: Sequence[S.PlanItem], texts: Sequence[str]) -> list[Written]:
        """Evaluation texts judged; a copy of any train text of the label fails quality."""
        ranked = self.rank(self.judge_of(task), texts)
        by_label: dict[str, list[str]] = {}
        for e in task.train:
            by_label.setdefault(e.output, []).append(e.input)
        return [Written(item.label, text, r,
                        S.quality(text, by_label.get(item.label, []), self.settings.min_words))
                for item, text, r in zip(items, texts, ranked, strict=True)]

    def _eval_items(self, task: Task, spec: SynthesisSpec) -> list[S.PlanItem]:
        """One request per eval example, for its label (the same each time for a task)."""
        rng = random.Random(f"{self.gen.seed}:{task.task_id}:eval")
        return S.plan_of([e.output for e in task.eval], self._pool(task), spec.attributes,
                         spec.shots, rng)

    def _eval_written(self, task: Task, adapter: str | None) -> list[Written]:
        spec = spec_of(task)
        items = self._eval_items(task, spec)
        with self.gen.bank.use(adapter):
            texts = [g[0] for g in self._write([self._request(task, spec, i) for i in items], 1, 0.0)]
        return self._judged(task, items, texts)

    def evaluate(self, task: Task, adapter: str | None) -> float:
        return float(np.mean([w.agrees for w in self._eval_written(task, adapter)]))

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]:
        """One greedy text per input, the input being the label to write (its description
        and few-shot texts from the task's train split; any other text is taken as the
        label's name as it is)."""
        spec = spec_of(task)
        rng = random.Random(f"{self.gen.seed}:{task.task_id}:predict")
        items = S.plan_of(list(texts), self._pool(task), {}, spec.shots, rng)
        with self.gen.bank.use(adapter):
            return [g[0] for g in self._write([self._request(task, spec, i) for i in items], 1, 0.0)]

    def write(self, source: Task, adapter: str | None, labels: Sequence[str],
              examples: Sequence[tuple[str, str]], n: int, temperature: float,
              seed: int) -> list[tuple[S.PlanItem, str]]:
        """`n` texts for a label-balanced plan of `labels`, sampled at `temperature` with the
        adapter of the synthesis task `source` (its instruction, descriptions, attribute
        pools and number of shots; few-shot texts drawn from `examples`, (text, label)
        pairs): the data flywheel's synthetic examples, with the plan item each answers."""
        spec, cap = spec_of(source), self.settings.max_shot_chars
        plan = S.make_plan(labels, [(t[:cap], lab) for t, lab in examples], n, spec.attributes,
                           spec.shots, seed)
        with self.gen.bank.use(adapter):
            texts = self._write([self._request(source, spec, item) for item in plan], 1,
                                temperature)
        return [(item, got[0]) for item, got in zip(plan, texts, strict=True)]

    def refine(self, task: Task, texts: Sequence[str], adapter: str | None, rounds: int,
               threshold: float, verifier: str | None = None) -> list[Refined]:
        """ILearner's refinement (`learner.refine`) of the text written for each label in
        `texts`, scored 0-5 by the task's judge: 5 x the label's rank credit for a text that
        passes the quality rules, else 0. A later round's request adds the last text and its
        score (`verifier` is not used: the judge is the task's)."""
        spec, judge = spec_of(task), self.judge_of(task)
        labels = list(dict.fromkeys(texts))
        rng = random.Random(f"{self.gen.seed}:{task.task_id}:predict")
        items = {x: S.plan_of([x], self._pool(task), {}, spec.shots, rng)[0] for x in labels}

        def generate(inputs: list[str]) -> list[str]:
            requests = []
            for x in inputs:  # a label, or a label's feedback round (`refine.feedback`)
                label = next(lab for lab in labels if x == lab or x.startswith(f"{lab}\n\n"))
                requests.append(self._request(task, spec, items[label]) + x[len(label):])
            with self.gen.bank.use(adapter):
                return [g[0] for g in self._write(requests, 1, 0.0)]

        def score(label: str, text: str) -> float:
            ranked = self.rank(judge, [text])[0]
            ok = S.quality(text, items[label].shots, self.settings.min_words) > 0
            return 5.0 * S.label_credit(label, ranked) if ok else 0.0

        return refine(generate, score, list(texts), rounds, threshold)

    # -- learning ------------------------------------------------------------------------
    def _sft_pairs(self, task: Task, spec: SynthesisSpec, replay: Sequence[ReplayItem],
                   rng: random.Random) -> list[tuple[str, str]]:
        """(request, text) pairs: each train text as the answer to its label's request with
        other texts of the label as shots; replayed texts with no shots. A text is cut to
        its first `max_new_tokens` tokens, the most the model is let write."""
        pool = self._pool(task)
        pairs = []
        for i, e in enumerate(task.train):
            others = [(t, lab) for j, (t, lab) in enumerate(pool) if j != i]
            item = S.plan_of([e.output], others, {}, spec.shots, rng)[0]
            pairs.append((self.gen.prompt("", self._request(task, spec, item)), self._cut(e.input)))
        for r in replay:
            if r.task.kind == "synthesis":
                item = S.PlanItem(r.record.target)
                pairs.append((self.gen.prompt("", S.prompt_text(r.task.instruction, item)),
                              self._cut(r.record.input)))
        return pairs

    def _cut(self, text: str) -> str:
        tok, n = self.gen.tokenizer, self.settings.max_new_tokens
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= n else str(tok.decode(ids[:n])).strip()

    def _sft(self, pairs: Sequence[tuple[str, str]], key: str, steps: int, seed: int,
             progress: Progress) -> float:
        gen, cfg = self.gen, self.settings
        settings = gen.settings.model_copy(update={"max_length": cfg.max_length})
        data = completion_dataset(gen.tokenizer, pairs, gen._completion_ids, cfg.max_length)
        gen.bank.activate(key, trainable=True)
        try:
            return train_sft(gen.bank.model, gen.tokenizer, data, settings, gen.device, steps,
                             seed, progress, "train")
        finally:
            gen.bank.model.eval()
            gen.bank.activate(key, trainable=False)

    @torch.inference_mode()
    def _texts_logp(self, pairs: Sequence[tuple[str, str]], adapter: str | None) -> float:
        """The mean token log-probability of the texts as answers to their requests."""
        gen = self.gen
        seqs = [s for prompt, text in pairs
                for s in answer_sequences(gen, prompt, [text], self.settings.max_length)]
        out = []
        with gen.bank.use(adapter):
            for i in range(0, len(seqs), gen.settings.batch_size):
                out.append(answer_logps(gen.bank.model, seqs[i : i + gen.settings.batch_size],
                                        gen.tokenizer.pad_token_id, gen.device, mean=True))
        return float(torch.cat(out).mean())

    def _check_start(self, task: Task, spec: SynthesisSpec, key: str, init_from: str,
                     seed: int, figures: dict[str, float]) -> bool:
        """Whether the copied start makes a sample of the task's train texts (unseen by
        either start) likelier than a fresh adapter (the base model) does; negative transfer
        starts fresh."""
        rng = random.Random(seed)
        pairs = self._sft_pairs(task, spec, (), rng)
        pairs = rng.sample(pairs, min(START_TEXTS, len(pairs)))
        fresh, copied = self._texts_logp(pairs, None), self._texts_logp(pairs, key)
        figures.update(start_logp_fresh=fresh, start_logp_transferred=copied)
        keep = copied >= fresh
        log.info("task %s: start from %s %s (log-prob per token of its texts %.3f vs fresh %.3f)",
                 task.task_id, init_from, "kept" if keep else "dropped", copied, fresh)
        return keep

    def learn(self, task: Task, replay: Sequence[ReplayItem], plan: LearnPlan,
              progress: Progress = no_progress) -> LearnOutcome:
        t0 = time.perf_counter()
        seed = seed_everything(self.gen.seed, task.task_id)
        spec = spec_of(task)
        judge = plan.judge or zero_shot_judge(task)
        self._judges[task.task_id] = judge
        bank, key = self.gen.bank, plan.adapter
        resume = plan.resume and bank.has(key)
        init_from = plan.init_from if plan.init_from and bank.has(plan.init_from) else None
        figures: dict[str, float] = {}
        if not resume:
            bank.create(key, init_from, seed)
            if init_from and not self._check_start(task, spec, key, init_from, seed, figures):
                bank.drop(key)
                bank.create(key, None, seed)
                init_from = None
        zero_shot = float(np.mean([w.agrees for w in self._eval_written(task, None)]))
        initial = self.evaluate(task, key) if resume or init_from else zero_shot
        seconds = {"eval_before": time.perf_counter() - t0}
        steps, loss = 0, math.nan
        attempts: list[Prediction] = []
        extras: dict[str, Any] = {}
        stages = plan.stages or stages_of(task, self.settings.methods)
        for stage in stages:  # the training its methods add, in order
            t = time.perf_counter()
            got = stage.train(self, task, key, replay, plan.steps, seed, progress, attempts)
            steps, loss = steps + got.steps, got.loss if not math.isnan(got.loss) else loss
            attempts += got.attempts
            if got.figures:
                extras[stage.name] = dict(got.figures)
            seconds[stage.name] = time.perf_counter() - t
        seconds["train"] = sum(seconds.get(stage.name, 0.0) for stage in stages)
        t2 = time.perf_counter()
        written = self._eval_written(task, key)
        final = float(np.mean([w.agrees for w in written]))
        kept = [w.text for w in written if w.text.strip()]
        figures.update(eval_agreement=final, **{
            f"eval_{k}": v for k, v in S.set_diversity(kept, self.embedder.embed(kept)).items()})
        train_ranked = self.rank(judge, [e.input for e in task.train])
        preds = [Prediction("train", e.input, e.output, r[0], r[0] == e.output, 0.0)
                 for e, r in zip(task.train, train_ranked, strict=True)]
        preds += [Prediction("eval", w.text, w.label, w.ranked[0], w.agrees, 0.0)
                  for w in written if w.text.strip()]
        seconds["eval_after"] = time.perf_counter() - t2
        return LearnOutcome(
            zero_shot=zero_shot, initial=initial, final=final, init_from=init_from, steps=steps,
            train_examples=len(task.train), replay_examples=len(replay), train_loss=loss,
            predictions=(*preds, *attempts), max_length=self.settings.max_length,
            seconds=seconds, extras={**extras, "synthesis": figures},
        )

    def supervised(self, task: Task, key: str, replay: Sequence[ReplayItem], steps: int,
                   seed: int, progress: Progress) -> StageResult:
        """Supervised fine-tuning on the task's request/text pairs plus replay (`steps` 0:
        `sft_steps`, else the generation settings')."""
        n = steps or self.settings.sft_steps or self.gen.settings.max_steps
        pairs = self._sft_pairs(task, spec_of(task), replay, random.Random(seed))
        return StageResult(n, self._sft(pairs, key, n, seed, progress))

    # -- the rest of the protocol --------------------------------------------------------
    def check(self, task: Task) -> None:
        """A synthesis task needs the causal LM (checked when the learner is built) and
        nothing else this learner can know; the judge is the daemon's check."""

    def merge(self, sources: Sequence[str], name: str, method: str) -> None:
        self.gen.bank.merge(list(sources), name, method)

    def has_adapter(self, task_id: str) -> bool:
        return self.gen.bank.has(task_id)

    def drop_adapter(self, task_id: str) -> None:
        self.gen.bank.drop(task_id)

    def save_adapter(self, task_id: str, path: Path) -> None:
        """A synthesis adapter's folder also keeps its judge, so that a restarted daemon
        scores it as it was scored when learned."""
        judge = self._judges.get(task_id)
        extra = {JUDGE_FILE: json.dumps({
            "task_id": judge.task.task_id, "instruction": judge.task.instruction,
            "labels": list(judge.task.labels), "adapter": judge.adapter})} if judge else {}
        self.gen.bank.save(task_id, path, extra)

    def load_adapter(self, task_id: str, path: Path) -> None:
        self.gen.bank.load(task_id, path)
        marker = path / JUDGE_FILE
        if marker.is_file():
            body = json.loads(marker.read_text())
            self._judges[task_id] = Judge.of(body["task_id"], body["instruction"], body["labels"],
                                             body["adapter"])
