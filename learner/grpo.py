"""GRPO for synthesis tasks (`learner.synth_learner`): group relative policy optimisation
on the plan's requests with the hierarchical reward (`learner.synthesis`). A step takes
`prompts_per_step` requests, samples `group` texts for each, scores each text (label
credit from the judge, attribute rules, quality rules, diversity within its group, weighted
by the schedule at this step); the advantages are the rewards normalised within each
group, and the loss is -advantage x the text's mean token log-probability (beta 0: no
reference model; one policy step per batch, so PPO's clipped ratio is 1)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from synlearner.learner import synthesis as S
from synlearner.learner.base import LearningError, Prediction, Progress
from synlearner.learner.dpo import answer_logps, answer_sequences
from synlearner.stream.schema import SynthesisSpec, Task

if TYPE_CHECKING:
    from synlearner.learner.synth_learner import SynthesisLearner

log = logging.getLogger("synlearner.learner")
ATTEMPT = "self_train"  # the split of texts the model sampled itself (as self-training's)


@dataclass(frozen=True)
class Written:
    """One synthesised text and how it was judged."""

    label: str  # the label it was asked for
    text: str
    ranked: tuple[str, ...]  # the judge's labels, most likely first
    quality: float

    @property
    def agrees(self) -> bool:
        return bool(self.ranked) and self.ranked[0] == self.label and self.quality > 0


@dataclass
class Grpo:
    steps: int = 0
    loss: float = math.nan
    figures: dict[str, float] = field(default_factory=dict)
    attempts: list[Prediction] = field(default_factory=list)


def train_grpo(syn: SynthesisLearner, task: Task, spec: SynthesisSpec, key: str, seed: int,
               progress: Progress) -> Grpo:
    """GRPO on the plan's requests (see the module)."""
    cfg, gen = syn.settings, syn.gen
    plan = S.make_plan(task.labels, syn._pool(task), spec.count, spec.attributes, spec.shots,
                       seed)
    schedule = S.WeightSchedule(cfg.weights, cfg.warmup_steps, cfg.amplitude, cfg.period)
    judge = syn.judge_of(task)
    done = Grpo()
    totals = dict.fromkeys((*S.TERMS, "reward", "agrees"), 0.0)
    rewards_by_step: list[float] = []
    updates = 0
    model = gen.bank.model
    gen.bank.activate(key, trainable=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    try:
        for step in range(1, cfg.steps + 1):
            first = (step - 1) * cfg.prompts_per_step
            items = [plan[(first + i) % len(plan)] for i in range(cfg.prompts_per_step)]
            requests = [syn._request(task, spec, item) for item in items]
            model.eval()
            groups = syn._write(requests, cfg.group, cfg.temperature)
            texts = [t for g in groups for t in g]
            ranked = syn.rank(judge, texts)
            vectors = syn.embedder.embed([t or " " for t in texts])
            weights = schedule.at(step)
            seqs, advantages, step_rewards = [], [], []
            for g, (item, request, group) in enumerate(zip(items, requests, groups, strict=True)):
                span = slice(g * cfg.group, (g + 1) * cfg.group)
                div = S.diversity_of(vectors[span])
                rewards = []
                for text, r, d in zip(group, ranked[span], div, strict=True):
                    w = Written(item.label, text, r, S.quality(text, item.shots, cfg.min_words))
                    terms = {"label": S.label_credit(item.label, r),
                             "attribute": S.attribute_compliance(text, item.attributes),
                             "quality": w.quality, "diversity": d}
                    rewards.append(S.combine(terms, weights))
                    for name, value in terms.items():
                        totals[name] += value
                    totals["agrees"] += w.agrees
                    if text.strip():
                        done.attempts.append(Prediction(ATTEMPT, text, item.label, r[0],
                                                        w.agrees, 0.0))
                step_rewards += rewards
                advantages += S.group_advantages(rewards)
                seqs += answer_sequences(gen, gen.prompt("", request), group, cfg.max_length)
            totals["reward"] += sum(step_rewards)
            rewards_by_step.append(float(np.mean(step_rewards)))
            if any(advantages):
                model.train()
                logps = answer_logps(model, seqs, gen.tokenizer.pad_token_id, gen.device,
                                     mean=True)
                adv = torch.tensor(advantages, dtype=logps.dtype, device=logps.device)
                loss = -(adv * logps).mean()
                done.loss = float(loss.detach())
                if not math.isfinite(done.loss):
                    raise LearningError(f"grpo: the loss became {done.loss} at step {step}")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch's stub
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimiser.step()
                updates += 1
            progress("grpo", step, cfg.steps, done.loss)
    finally:
        model.eval()
        gen.bank.activate(key, trainable=False)
    samples = cfg.steps * cfg.prompts_per_step * cfg.group
    done.steps = cfg.steps
    half = max(1, len(rewards_by_step) // 2)
    done.figures = {
        "grpo_steps": float(cfg.steps), "grpo_updates": float(updates),
        "samples": float(samples), "sample_agreement": totals["agrees"] / samples,
        "reward_mean": totals["reward"] / samples,
        "reward_first_half": float(np.mean(rewards_by_step[:half])),
        "reward_second_half": float(np.mean(rewards_by_step[half:] or rewards_by_step)),
        **{f"term_{name}": totals[name] / samples for name in S.TERMS},
    }
    log.info("task %s: grpo: %d steps (%d with a signal), %d samples, reward %.3f -> %.3f, "
             "judge agreement %.3f", task.task_id, cfg.steps, updates, samples,
             done.figures["reward_first_half"], done.figures["reward_second_half"],
             done.figures["sample_agreement"])
    return done
