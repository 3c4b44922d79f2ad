"""The causal LM's tasks, one LoRA adapter per task on one resident model: `generation`
(TRL's `SFTTrainer` on prompt/completion pairs, loss on the completion only, then the
training its methods add; exact match after normalising case, punctuation and spaces),
`preference` (DPO on its pairs, `learner.dpo`; the share of pairs whose chosen answer is
likelier per token) and `verification` (a verifier, `learner.verifier`: SFT to the score's
digit; the share of judgements equal to the score rounded)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from synlearner.learner import rewards
from synlearner.learner.adapters import AdapterBank, peft_lora
from synlearner.learner.base import (
    LearningError,
    LearnOutcome,
    LearnPlan,
    Prediction,
    Progress,
    StageResult,
    no_progress,
)
from synlearner.learner.config import GenerationConfig
from synlearner.learner.dpo import learn_preference_task, prefers_chosen
from synlearner.learner.methods import stages_of
from synlearner.learner.model import causal_lm_path, pick_device, seed_everything
from synlearner.learner.refine import Refined, refine
from synlearner.learner.rewards import normalise
from synlearner.learner.sft import completion_dataset, train_sft
from synlearner.learner.verifier import CachedScorer, Verifier, instruction_of
from synlearner.memory.base import Embedder, ReplayItem
from synlearner.stream.schema import Task


def prompt_of(instruction: str, text: str) -> str:
    return f"{instruction}\ninput: {text}\nanswer:"


KINDS = ("generation", "preference", "verification")
VERIFIER_FILE = "synlearner-verifier.json"  # beside a verifier adapter's weights: its prompt


@dataclass
class _Trained:
    """What a kind's training produced, for the outcome."""

    steps: int = 0
    loss: float = float("nan")
    extra: list[Prediction] = field(default_factory=list)  # answers the stages sampled
    extras: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # by method
    replay: int = 0


class SftGenerator:
    """The learner of every kind in `KINDS` (one instance serves them all)."""

    kind = "generation"

    def __init__(self, settings: GenerationConfig, embedder: Embedder, device: str = "auto",
                 seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed
        self.device = pick_device(device)
        self._embedder = embedder
        self._bank: AdapterBank | None = None
        self._tokenizer: Any = None
        self.verifier = Verifier(self)
        self._verifiers: dict[str, str] = {}  # verification task id -> its instruction

    def _load(self) -> AdapterBank:
        """Load the model when a generation task first needs it (a daemon that only ever sees
        classification tasks never pays for it)."""
        if self._bank is None:
            path = causal_lm_path(self.settings.model, self.settings.cache_dir)
            tok = AutoTokenizer.from_pretrained(str(path))
            if tok.eos_token is None:  # e.g. a BERT-style vocabulary
                tok.eos_token = tok.sep_token
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            tok.padding_side = "left"
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
            model = model.to(self.device)  # type: ignore[arg-type]  # transformers' stub of .to
            model.eval()
            self._tokenizer = tok
            self._bank = AdapterBank(model, peft_lora(self.settings.lora, task_type="CAUSAL_LM"),
                                     path)
        return self._bank

    @property
    def bank(self) -> AdapterBank:
        return self._load()

    @property
    def tokenizer(self) -> Any:
        self._load()
        return self._tokenizer

    def prompt(self, instruction: str, text: str) -> str:
        """The prompt of one input: the model's chat template where it has one (an instruct
        model answers in its assistant turn), else `instruction / input: ... / answer:`."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            content = f"{instruction}\n\n{text}" if instruction else text
            return str(tok.apply_chat_template([{"role": "user", "content": content}],
                                               add_generation_prompt=True, tokenize=False))
        return prompt_of(instruction, text)

    def _completion_ids(self, completion: str) -> list[int]:
        tok = self.tokenizer
        lead = "" if getattr(tok, "chat_template", None) else " "
        return list(tok(lead + completion, add_special_tokens=False)["input_ids"]) + [
            tok.eos_token_id]

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    # -- inference -----------------------------------------------------------------------
    def _prompt_ids(self, instruction: str, texts: Sequence[str],
                    max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and attention mask, each prompt cut to its last
        `max_length` tokens."""
        tok = self.tokenizer
        ids = [tok(self.prompt(instruction, t), add_special_tokens=False)["input_ids"]
               [-max_length:] for t in texts]
        width = max(len(i) for i in ids)
        input_ids = torch.tensor([[tok.pad_token_id] * (width - len(i)) + i for i in ids])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        return input_ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def generate(self, instruction: str, texts: Sequence[str], k: int = 1,
                 temperature: float = 0.0, max_new_tokens: int = 0,
                 max_length: int = 0) -> list[list[str]]:
        """`k` answers per text with the active adapter: greedy when `temperature` is 0, else
        sampled at it (all `k` in one batched `generate` call per group of prompts);
        `max_new_tokens` and `max_length` (the prompt's tokens) default to the settings'."""
        out: list[list[str]] = []
        tok = self.tokenizer
        per_call = max(1, self.settings.generate_batch // k)
        for start in range(0, len(texts), per_call):
            input_ids, mask = self._prompt_ids(instruction, texts[start : start + per_call],
                                               max_length or self.settings.max_length)
            sampling: dict[str, Any] = (
                {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0,
                 "num_return_sequences": k} if temperature > 0 else {"do_sample": False})
            gen = self.bank.model.generate(  # type: ignore[no-untyped-call]  # peft's stub
                input_ids=input_ids, attention_mask=mask,
                max_new_tokens=max_new_tokens or self.settings.max_new_tokens,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id, **sampling,
            )
            answers = [a.strip() for a in
                       tok.batch_decode(gen[:, input_ids.shape[1]:], skip_special_tokens=True)]
            out += [answers[i : i + k] for i in range(0, len(answers), k)]
        return out

    def predict(self, task: Task, texts: Sequence[str], adapter: str | None) -> list[str]:
        with self.bank.use(adapter):
            return [a[0] for a in self.generate(task.instruction, texts)]

    def sample(self, task: Task, texts: Sequence[str], adapter: str | None, k: int,
               temperature: float) -> list[list[str]]:
        with self.bank.use(adapter):
            return self.generate(task.instruction, texts, k, temperature)

    def evaluate(self, task: Task, adapter: str | None) -> float:
        return float(np.mean([p.correct for p in self._judge(task, task.eval, adapter, "eval")]))

    def _judge(self, task: Task, examples: Sequence[Any], adapter: str | None,
               split: str) -> list[Prediction]:
        """The model's answer to each example and whether it is right, by the task's kind."""
        if task.kind == "preference":
            prefers = prefers_chosen(self, task, examples, adapter)
            return [Prediction(split, e.input, e.output, e.output if ok else e.rejected, ok, 0.0)
                    for e, ok in zip(examples, prefers, strict=True)]
        if task.kind == "verification":
            return self.verifier.judge(task, examples, adapter, split)
        answers = self.predict(task, [e.input for e in examples], adapter)
        return [Prediction(split, e.input, e.output, a, normalise(a) == normalise(e.output), 0.0)
                for e, a in zip(examples, answers, strict=True)]

    # -- learning ------------------------------------------------------------------------
    def _dataset(self, pairs: Sequence[tuple[str, str]]) -> Dataset:
        return completion_dataset(self.tokenizer, pairs, self._completion_ids,
                                  self.settings.max_length)

    def _pairs(self, task: Task, replay: Sequence[ReplayItem]) -> list[tuple[str, str]]:
        pairs = [(self.prompt(task.instruction, e.input), e.output) for e in task.train]
        return pairs + self.replay_pairs(replay)

    def replay_pairs(self, replay: Sequence[ReplayItem]) -> list[tuple[str, str]]:
        return [(self.prompt(r.task.instruction, r.record.input), r.record.target)
                for r in replay if r.task.kind == "generation"]

    def _sft(self, key: str, pairs: Sequence[tuple[str, str]], steps: int, seed: int,
             progress: Progress, phase: str = "train") -> float:
        """`steps` optimiser steps of SFT on `pairs` (loss on the completions) for adapter
        `key`; returns the last logged loss."""
        self.bank.activate(key, trainable=True)
        try:
            return train_sft(self.bank.model, self.tokenizer, self._dataset(pairs), self.settings,
                             self.device, steps, seed, progress, phase)
        finally:
            self.bank.model.eval()
            self.bank.activate(key, trainable=False)

    def learn(self, task: Task, replay: Sequence[ReplayItem], plan: LearnPlan,
              progress: Progress = no_progress) -> LearnOutcome:
        """Learn `task` on `plan.adapter` as its kind says (see the module's docstring). No
        init probe and no learning curve for these kinds."""
        t0 = time.perf_counter()
        seed = seed_everything(self.seed, task.task_id)
        key = plan.adapter
        resume = plan.resume and self.bank.has(key)
        init_from = plan.init_from if plan.init_from and self.bank.has(plan.init_from) else None
        if not resume:
            self.bank.create(key, init_from, seed)
        zero_shot = self.evaluate(task, None)
        initial = self.evaluate(task, key) if resume or init_from else zero_shot
        seconds = {"eval_before": time.perf_counter() - t0}
        if task.kind == "preference":
            done = self._learn_preference(task, key, plan, seed, progress, seconds)
        elif task.kind == "verification":
            done = self._learn_verification(task, replay, key, plan, seed, progress, seconds)
        else:
            done = self._learn_stages(task, replay, key, plan, seed, progress, seconds)
        t2 = time.perf_counter()
        # one pass per split: the final score and the mistakes
        preds = [*self._judge(task, task.train, key, "train"),
                 *self._judge(task, task.eval, key, "eval")]
        final = float(np.mean([p.correct for p in preds if p.split == "eval"]))
        seconds["eval_after"] = time.perf_counter() - t2
        return LearnOutcome(
            zero_shot=zero_shot, initial=initial, final=final, init_from=init_from,
            steps=done.steps, train_examples=len(task.train), replay_examples=done.replay,
            train_loss=done.loss, predictions=(*preds, *done.extra),
            max_length=self.settings.max_length, inputs_cut=self._count_cut(task),
            seconds=seconds, extras=done.extras,
        )

    def _learn_stages(self, task: Task, replay: Sequence[ReplayItem], key: str, plan: LearnPlan,
                      seed: int, progress: Progress, seconds: dict[str, float]) -> _Trained:
        """A generation task's training: the stages its methods add, in order (those of
        `learner.generation.methods` when the plan has none); each method's figures go in
        `extras[name]`."""
        done = _Trained(replay=len(replay))
        stages = plan.stages or stages_of(task, self.settings.methods)
        for stage in stages:
            t = time.perf_counter()
            got = stage.train(self, task, key, replay, plan.steps, seed, progress, done.extra)
            done.steps += got.steps
            done.loss = got.loss if not math.isnan(got.loss) else done.loss
            done.extra += got.attempts
            if got.figures:
                done.extras[stage.name] = dict(got.figures)
            seconds[stage.name] = seconds.get(stage.name, 0.0) + time.perf_counter() - t
        seconds["train"] = sum(seconds.get(s.name, 0.0) for s in stages)
        return done

    def supervised(self, task: Task, key: str, replay: Sequence[ReplayItem], steps: int,
                   seed: int, progress: Progress) -> StageResult:
        """Supervised fine-tuning on the task's pairs plus replay (`steps` 0: the settings')."""
        n = steps or self.settings.max_steps
        return StageResult(n, self._sft(key, self._pairs(task, replay), n, seed, progress))

    def reward_of(self, task: Task) -> rewards.Reward:
        """The task's reward (`reward` in its message; its verifiers must be learned)."""
        return rewards.build(rewards.parse(task.reward), self._scorers(task))

    def _learn_preference(self, task: Task, key: str, plan: LearnPlan, seed: int,
                          progress: Progress, seconds: dict[str, float]) -> _Trained:
        t = time.perf_counter()
        figures = learn_preference_task(self, task, key, plan.steps, seed, progress)
        seconds["train"] = seconds["preference"] = time.perf_counter() - t
        return _Trained(steps=int(figures["steps"]), loss=figures["loss"],
                        extras={"preference": figures})

    def _learn_verification(self, task: Task, replay: Sequence[ReplayItem], key: str,
                            plan: LearnPlan, seed: int, progress: Progress,
                            seconds: dict[str, float]) -> _Trained:
        t = time.perf_counter()
        n, loss, replayed = self.verifier.learn(task, replay, key, plan.steps, seed, progress)
        if key == task.task_id:
            self._verifiers[key] = instruction_of(task.instruction)
        seconds["train"] = time.perf_counter() - t
        return _Trained(steps=n, loss=loss, replay=replayed)

    def _scorers(self, task: Task) -> Mapping[str, rewards.Scorer]:  # the reward's verifiers
        return {tid: self.scorer(tid) for tid in rewards.verifier_tasks(rewards.parse(task.reward))}

    def scorer(self, verification_task: str) -> rewards.Scorer:
        """The verifier learned from `verification_task` as a (prompt, answer) -> 0-5 scorer."""
        tid = verification_task
        if tid not in self._verifiers or not self.bank.has(tid):
            raise LearningError(f"reward: no verifier adapter for the verification task {tid!r}")
        return CachedScorer(self.verifier, tid, self._verifiers[tid])

    def refine(self, task: Task, texts: Sequence[str], adapter: str | None, rounds: int,
               threshold: float, verifier: str | None = None) -> list[Refined]:
        """ILearner's refinement (`learner.refine`) of answers to `texts`, scored by the
        verifier of `verifier`, else of the first verifier term of the task's reward."""
        named = [verifier] if verifier else rewards.verifier_tasks(rewards.parse(task.reward))
        if not named:
            raise LearningError(f"refine: the reward of task {task.task_id!r} names no verifier; "
                                "name a verification task")
        return refine(lambda xs: self.predict(task, xs, adapter), self.scorer(named[0]), texts,
                      rounds, threshold)

    def _count_cut(self, task: Task) -> int:
        """Examples whose prompt and answer exceed `max_length` tokens (their start is cut)."""
        texts = [self.prompt(task.instruction, e.input) + " " + e.output
                 for e in (*task.train, *task.eval)]
        ids = self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        return sum(len(row) > self.settings.max_length for row in ids)

    def check(self, task: Task) -> None:
        """The reward declaration must parse (that a verifier term names a learned
        verification task is the daemon's check: it knows what was learned)."""
        try:
            rewards.parse(task.reward)
        except rewards.RewardError as exc:
            raise ValueError(str(exc)) from None

    def merge(self, sources: Sequence[str], name: str, method: str) -> None:
        self.bank.merge(list(sources), name, method)

    def has_adapter(self, task_id: str) -> bool:
        return self.bank.has(task_id)

    def drop_adapter(self, task_id: str) -> None:
        self.bank.drop(task_id)

    def save_adapter(self, task_id: str, path: Path) -> None:
        """A verifier's adapter folder also keeps its prompt's instruction, so a restarted
        daemon scores with it as it was trained."""
        extra = ({VERIFIER_FILE: json.dumps({"instruction": self._verifiers[task_id]})}
                 if task_id in self._verifiers else {})
        self.bank.save(task_id, path, extra)

    def load_adapter(self, task_id: str, path: Path) -> None:
        self.bank.load(task_id, path)
        marker = path / VERIFIER_FILE
        if marker.is_file():
            self._verifiers[task_id] = str(json.loads(marker.read_text())["instruction"])
        else:
            self._verifiers.pop(task_id, None)
