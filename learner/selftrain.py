"""Self-training with balanced exploration (B-STaR) for generation tasks.

Each round: choose the sampling temperature T (successive halving over B-STaR's grid on a
few dev prompts, `learner.exploration`), sample K answers for each of a round's train
prompts in batched `generate` calls, score them with the task's reward, choose the
threshold tau on those scores (exact, no extra sampling), keep the unique answers scoring at
least tau (and the reference, as B-STaR adds the gold answer), and fine-tune the task's
adapter on them with replay. `search: fixed` uses the configured T and tau instead.

"Correct" is the task's evaluation: exact match with the reference after normalisation.
Every answer sampled is kept for the memory (split `self_train`, never replayed as a
train example): the wrong ones as errors (hard negatives for preference pairs), the right
ones as successes. Every round also trains on `successes` recalled from memory: right
answers of the model's own to related past tasks, chosen to cover their inputs
(`Memory.successes`), so that its answers stay varied beyond the task at hand.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from synlearner.learner.base import Prediction, Progress
from synlearner.learner.config import SelfTrainConfig
from synlearner.learner.exploration import (
    B_STAR_SAMPLES,
    Sample,
    balance_score,
    best_tau,
    pass_at,
    selection_precision,
    successive_halving,
    unique_correct_ratio,
)
from synlearner.learner.rewards import Reward, normalise
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import Example, Task

if TYPE_CHECKING:
    from synlearner.learner.generation import SftGenerator

log = logging.getLogger("synlearner.learner")


@dataclass(frozen=True)
class Round:
    round: int
    temperature: float
    tau: float
    balance: float  # of the round's samples at tau
    pass_at_1: float
    pass_at_k: float
    unique_correct: float  # unique correct answers over correct answers drawn
    precision: float  # of the answers kept, the share that is correct
    kept: int  # answers kept for training (the references included)
    samples: int  # answers generated this round, the search's included
    past_successes: int  # right answers to related past tasks replayed (from memory)
    search_samples: int  # of which the (T, tau) search drew
    grid_samples: int  # what B-STaR's full grid would have drawn on the same dev prompts
    steps: int
    loss: float
    eval_accuracy: float  # exact match on the task's eval split after the round

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class SelfTrainer:
    def __init__(self, gen: SftGenerator, cfg: SelfTrainConfig, reward: Reward) -> None:
        self.gen = gen
        self.cfg = cfg
        self.reward = reward
        self.attempts: list[Prediction] = []  # every distinct answer sampled, right or wrong

    def _score(self, task: Task, key: str, examples: Sequence[Example], k: int,
               temperature: float) -> list[list[Sample]]:
        answers = self.gen.sample(task, [e.input for e in examples], key, k, temperature)
        groups = []
        for ex, got in zip(examples, answers, strict=True):
            want = normalise(ex.output)
            groups.append([Sample(a, self.reward(ex.input, a, ex.output), normalise(a) == want)
                           for a in got])
        return groups

    def run(self, task: Task, key: str, replay: Sequence[ReplayItem], seed: int,
            progress: Progress, successes: Sequence[ReplayItem] = ()) -> list[Round]:
        cfg, rng = self.cfg, random.Random(seed)
        train = list(task.train)
        replay_pairs = self.gen.replay_pairs(replay)
        replay_pairs += [(self.gen.prompt(r.task.instruction, r.record.input), r.record.prediction)
                         for r in successes[: cfg.past_successes]]
        rounds: list[Round] = []
        for r in range(cfg.rounds):
            search_samples = grid_samples = 0
            if cfg.search == "balanced":
                dev = rng.sample(train, min(cfg.dev_prompts, len(train)))

                def on_dev(t: float, idx: Sequence[int], k: int,
                           dev: list[Example] = dev) -> list[list[Sample]]:
                    return self._score(task, key, [dev[i] for i in idx], k, t)

                choice = successive_halving(on_dev, len(dev), cfg.temperatures, cfg.first_rung,
                                            cfg.n_star)
                temperature, search_samples = choice.temperature, choice.samples
                grid_samples = len(cfg.temperatures) * B_STAR_SAMPLES * len(dev)
            else:
                temperature = cfg.temperature
            prompts = rng.sample(train, min(cfg.prompts, len(train)))
            groups = self._score(task, key, prompts, cfg.samples, temperature)
            tau = best_tau(groups, cfg.n_star)[0] if cfg.search == "balanced" else cfg.tau
            pairs: list[tuple[str, str]] = []
            for ex, group in zip(prompts, groups, strict=True):
                prompt = self.gen.prompt(task.instruction, ex.input)
                kept = dict.fromkeys(s.text for s in group if s.score >= tau and s.text)
                if cfg.add_reference:
                    kept.setdefault(ex.output)
                pairs += [(prompt, text) for text in kept]
                answers = {s.text: s.correct for s in group if s.text}
                self.attempts += [Prediction("self_train", ex.input, ex.output, text, right, 0.0)
                                  for text, right in answers.items()]
            loss = self.gen._sft(key, [*pairs, *replay_pairs], cfg.steps, seed + r + 1, progress,
                                 phase=f"self_train round {r + 1}")
            p1, pk = pass_at(groups)
            done = Round(
                round=r + 1, temperature=temperature, tau=tau,
                balance=balance_score(groups, tau, cfg.n_star), pass_at_1=p1, pass_at_k=pk,
                unique_correct=unique_correct_ratio(groups),
                precision=selection_precision(groups, tau), kept=len(pairs),
                samples=search_samples + cfg.samples * len(prompts),
                past_successes=min(len(successes), cfg.past_successes),
                search_samples=search_samples, grid_samples=grid_samples, steps=cfg.steps,
                loss=loss, eval_accuracy=self.gen.evaluate(task, key))
            log.info("task %s: self-training round %d/%d: T %.2f tau %.2f balance %.3f pass@1 "
                     "%.3f pass@K %.3f kept %d samples %d (search %d; full grid %d) eval %.3f",
                     task.task_id, done.round, cfg.rounds, temperature, tau, done.balance, p1, pk,
                     done.kept, done.samples, search_samples, grid_samples, done.eval_accuracy)
            rounds.append(done)
        return rounds
