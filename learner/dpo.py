"""Direct preference optimisation (DPO, Rafailov et al. 2023) of one adapter of the bank.

The loss is TRL's default (`loss_type="sigmoid"`): -log sigmoid(beta * ((log pi(chosen) -
log ref(chosen)) - (log pi(rejected) - log ref(rejected)))), log-probabilities summed over
the answer's tokens only. The reference is the adapter itself as it was when the method
began; its log-probabilities are computed once, before the first step (TRL's
`precompute_ref_log_probs`), so no copy of the model or of the adapter is kept.

TRL's `DPOTrainer` is not used: given a PEFT model it trains and copies the adapter named
`default`, and the bank keeps one adapter per task, named by task, in one resident model.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from synlearner.learner.base import LearningError, Negative, Prediction, Progress
from synlearner.learner.config import PreferenceConfig
from synlearner.learner.exploration import Sample
from synlearner.learner.preference import Pair, build_pairs, source_counts, template_negatives
from synlearner.learner.rewards import Reward, normalise
from synlearner.stream.schema import Example, Task

if TYPE_CHECKING:
    from synlearner.learner.generation import SftGenerator

log = logging.getLogger("synlearner.learner")


@dataclass(frozen=True)
class DpoResult:
    steps: int
    loss: float  # mean over the last step's batch
    reward_accuracy: float  # share of pairs whose implicit reward ranks chosen first, after
    margin: float  # mean implicit reward margin (beta-scaled), after


def answer_sequences(gen: SftGenerator, prompt: str, answers: Sequence[str],
                     limit: int = 0) -> list[tuple[list[int], int]]:
    """Token ids of prompt + answer (the prompt cut from the left to fit `limit` tokens, by
    default `max_length`) and where the answer starts."""
    tok, limit = gen.tokenizer, limit or gen.settings.max_length
    p = list(tok(prompt, add_special_tokens=False)["input_ids"])
    out = []
    for answer in answers:
        c = gen._completion_ids(answer)[: limit - 1]
        head = p[-(limit - len(c)):]
        out.append((head + c, len(head)))
    return out


def answer_logps(model: torch.nn.Module, seqs: Sequence[tuple[list[int], int]], pad: int,
           device: torch.device, mean: bool = False) -> torch.Tensor:
    """Log-probabilities of each sequence's answer tokens, summed (or averaged with `mean`),
    in one right-padded batch."""
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    answer = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, (row, start) in enumerate(seqs):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        answer[i, start : len(row)] = True
    ids, mask, answer = ids.to(device), mask.to(device), answer.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    token_logps = torch.gather(F.log_softmax(logits, dim=-1), 2, ids[:, 1:, None]).squeeze(2)
    total = (token_logps * answer[:, 1:]).sum(dim=1)
    return total / answer[:, 1:].sum(dim=1).clamp(min=1) if mean else total


def _pair_logps(gen: SftGenerator, seqs: Sequence[tuple[list[int], int]]) -> torch.Tensor:
    return answer_logps(gen.bank.model, seqs, gen.tokenizer.pad_token_id, gen.device)


def prefers_chosen(gen: SftGenerator, task: Task, examples: Sequence[Example],
                   adapter: str | None) -> list[bool]:
    """For each preference example, whether `adapter` (None: the base model) gives its
    chosen answer a higher mean per-token log-probability than its rejected one (per token,
    so that a longer answer is not preferred less for its length alone)."""
    out: list[bool] = []
    batch = max(1, gen.settings.batch_size)
    with torch.inference_mode(), gen.bank.use(adapter):
        for i in range(0, len(examples), batch):
            seqs = [s for e in examples[i : i + batch]
                    for s in answer_sequences(gen, gen.prompt(task.instruction, e.input),
                                        (e.output, e.rejected))]
            got = answer_logps(gen.bank.model, seqs, gen.tokenizer.pad_token_id, gen.device,
                         mean=True).view(-1, 2)
            out += (got[:, 0] > got[:, 1]).tolist()
    return out


def train_dpo(gen: SftGenerator, key: str, pairs: Sequence[tuple[str, str, str]],
              cfg: PreferenceConfig, seed: int, progress: Progress,
              phase: str = "preference") -> DpoResult:
    """`cfg.steps` DPO steps on `pairs` of (prompt, chosen, rejected) for adapter `key`."""
    seqs = [answer_sequences(gen, prompt, (chosen, rejected)) for prompt, chosen, rejected in pairs]
    bank = gen.bank
    with torch.inference_mode():
        bank.activate(key, trainable=False)
        ref = torch.cat([_pair_logps(gen, [s for pair in seqs[i : i + cfg.batch_size] for s in pair])
                         for i in range(0, len(seqs), cfg.batch_size)]).view(-1, 2).clone()
    bank.activate(key, trainable=True)
    params = [p for p in bank.model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = random.Random(seed)
    order: list[int] = []
    loss_value = float("nan")
    try:
        bank.model.train()
        for step in range(1, cfg.steps + 1):
            if len(order) < cfg.batch_size:
                more = list(range(len(seqs)))
                rng.shuffle(more)
                order += more
            batch, order = order[: cfg.batch_size], order[cfg.batch_size :]
            got = _pair_logps(gen, [s for i in batch for s in seqs[i]]).view(-1, 2)
            logits = cfg.beta * ((got[:, 0] - ref[batch, 0]) - (got[:, 1] - ref[batch, 1]))
            loss = -F.logsigmoid(logits).mean()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise LearningError(f"{phase}: the DPO loss became {loss_value} at step {step}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch's stub
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            progress(phase, step, cfg.steps, loss_value)
    finally:
        bank.model.eval()
        bank.activate(key, trainable=False)
    with torch.inference_mode():
        margins = torch.cat([
            _pair_logps(gen, [s for pair in seqs[i : i + cfg.batch_size] for s in pair]).view(-1, 2)
            for i in range(0, len(seqs), cfg.batch_size)]) - ref
        implicit = cfg.beta * (margins[:, 0] - margins[:, 1])
    return DpoResult(cfg.steps, loss_value, float((implicit > 0).float().mean()),
                     float(implicit.mean()))


def learn_preference_task(gen: SftGenerator, task: Task, key: str, steps: int, seed: int,
                          progress: Progress) -> dict[str, float]:
    """A `preference` task: DPO on its own (prompt, chosen, rejected) pairs for `steps`
    (0: the configured steps); no replay (the memory keeps no rejected answers to replay)."""
    cfg = gen.settings.preference
    if steps:
        cfg = cfg.model_copy(update={"steps": steps})
    pairs = [(gen.prompt(task.instruction, e.input), e.output, e.rejected) for e in task.train]
    result = train_dpo(gen, key, pairs, cfg, seed, progress)
    return {"pairs": float(len(pairs)), "steps": float(result.steps), "loss": result.loss,
            "reward_accuracy": result.reward_accuracy, "margin": result.margin}


def run_preference(gen: SftGenerator, task: Task, key: str, reward: Reward,
                   negatives: Mapping[str, Sequence[Negative]], own: Sequence[Prediction],
                   seed: int, progress: Progress) -> tuple[dict[str, float], list[Prediction]]:
    """The `preference` method: candidates sampled for a sample of train prompts (one per
    configured temperature), pairs built from them and the recalled wrong answers (`own`
    adds this learning's own mistakes, e.g. self-training's), DPO on adapter `key`. Returns
    the method's figures and the wrong candidates (for the error memory)."""
    cfg = gen.settings.preference
    rng = random.Random(seed)
    prompts = rng.sample(list(task.train), min(cfg.prompts, len(task.train)))
    inputs = [e.input for e in prompts]
    per_t = [gen.sample(task, inputs, key, 1, t) for t in cfg.temperatures]
    recalled: dict[str, list[Negative]] = {k: list(v) for k, v in negatives.items()}
    for p in own:
        if not p.correct:
            recalled.setdefault(p.input, []).insert(0, Negative(p.prediction, "own"))
    others = [e.output for e in task.train]
    pairs: list[Pair] = []
    skipped, mistakes = 0, []
    for i, ex in enumerate(prompts):
        cands = [Sample(got[i][0], reward(ex.input, got[i][0], ex.output),
                        normalise(got[i][0]) == normalise(ex.output)) for got in per_t]
        mistakes += [Prediction("self_train", ex.input, ex.output, c.text, False, 0.0)
                     for c in {c.text: c for c in cands if not c.correct and c.text}.values()]
        negs = list(recalled.get(ex.input, []))
        if "template" in cfg.negatives:
            negs += template_negatives(ex.output, others, rng)
        made, skip = build_pairs(ex.input, ex.output, cands, negs, reward, sources=cfg.negatives,
                                 per_prompt=cfg.pairs_per_prompt, min_score_gap=cfg.min_score_gap)
        pairs += made
        skipped += skip
    counts = source_counts(pairs)
    stats: dict[str, float] = {"prompts": len(prompts), "candidates": len(prompts) * len(per_t),
                               "pairs": len(pairs), "skipped_gap": skipped,
                               **{f"pairs_{s}": float(n) for s, n in counts.items()}}
    if pairs:
        done = train_dpo(gen, key, [(gen.prompt(task.instruction, p.input), p.chosen, p.rejected)
                                    for p in pairs], cfg, seed, progress)
        stats.update(steps=done.steps, loss=done.loss, reward_accuracy=done.reward_accuracy,
                     margin=done.margin)
    else:
        stats["steps"] = 0
    log.info("task %s: preference: %d pairs (%s), %d skipped for a gap under %.2f; DPO %d steps, "
             "loss %.4f, reward accuracy %.3f", task.task_id, len(pairs),
             ", ".join(f"{s} {n}" for s, n in counts.items()), skipped, cfg.min_score_gap,
             stats["steps"], stats.get("loss", math.nan), stats.get("reward_accuracy", math.nan))
    return stats, mistakes
