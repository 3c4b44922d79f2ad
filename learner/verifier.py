"""Verification tasks: a verifier adapter on the generation model that scores an answer.

A verification example is (question, answer, score 0-5). The verifier reads

    <instruction>
    Question: <question>
    Answer: <answer>

in the model's prompt format and is fine-tuned (SFT, as generation tasks) to reply with the
score's digit. It is read in one forward pass, no generation: the next-token distribution
over the six digits, renormalised. The expected digit is the verifier's score (what the
`verifier` reward of a generation task uses, divided by 5); the most likely digit is its
judgement, which is right when it equals the example's score rounded (the task's accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from synlearner.learner.base import LearningError, Prediction, Progress
from synlearner.memory.base import ReplayItem
from synlearner.stream.schema import MAX_SCORE, Example, Task

if TYPE_CHECKING:
    from synlearner.learner.generation import SftGenerator

DEFAULT_INSTRUCTION = (f"Rate how well the answer answers the question, from 0 (wrong) to "
                       f"{MAX_SCORE} (fully right). Reply with the digit only.")
DIGITS = tuple(str(d) for d in range(MAX_SCORE + 1))


def judged_text(question: str, answer: str) -> str:
    """What the verifier reads (the input of its memory records too)."""
    return f"Question: {question}\nAnswer: {answer}"


def instruction_of(instruction: str) -> str:
    """The verifier's instruction: the verification task's own, else the default."""
    return instruction or DEFAULT_INSTRUCTION


def digit_of(score: float) -> str:
    return str(min(MAX_SCORE, max(0, round(score))))


class Verifier:
    """Scoring and training data of verification tasks for one `SftGenerator`."""

    def __init__(self, gen: SftGenerator) -> None:
        self.gen = gen
        self._digit_ids: list[int] | None = None

    @property
    def digit_ids(self) -> list[int]:
        """The token of each digit as the model would write it as the whole answer."""
        if self._digit_ids is None:
            ids = [self.gen._completion_ids(d)[:-1] for d in DIGITS]  # without the end token
            if any(len(i) != 1 for i in ids):
                raise LearningError("verification: the model's tokenizer does not write each "
                                    "digit 0-5 as one token")
            self._digit_ids = [i[0] for i in ids]
        return self._digit_ids

    def pairs(self, task: Task, replay: Sequence[ReplayItem]) -> list[tuple[str, str]]:
        """(prompt, digit) training pairs of the task, plus replayed verification records."""
        gen = self.gen
        own = [(gen.prompt(instruction_of(task.instruction), judged_text(e.input, e.output)),
                digit_of(e.score or 0.0)) for e in task.train]
        return own + [(gen.prompt(instruction_of(r.task.instruction), r.record.input), r.record.target)
                      for r in replay if r.task.kind == "verification"]

    def learn(self, task: Task, replay: Sequence[ReplayItem], key: str, steps: int, seed: int,
              progress: Progress) -> tuple[int, float, int]:
        """SFT of adapter `key` on the task's judgements plus replayed ones for `steps` (0: the
        configured steps); returns the steps, the last loss and the replayed pairs."""
        pairs = self.pairs(task, replay)
        n = steps or self.gen.settings.max_steps
        return n, self.gen._sft(key, pairs, n, seed, progress), len(pairs) - len(task.train)

    @torch.no_grad()
    def distribution(self, instruction: str, texts: Sequence[str], adapter: str | None) -> torch.Tensor:
        """P(digit) for each judged text: a (len(texts), 6) tensor."""
        gen = self.gen
        out = []
        with gen.bank.use(adapter):
            for start in range(0, len(texts), gen.settings.generate_batch):
                ids, mask = gen._prompt_ids(instruction, texts[start : start + gen.settings.generate_batch],
                                            gen.settings.max_length)
                logits = gen.bank.model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
                out.append(torch.softmax(logits[:, self.digit_ids], dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros((0, len(DIGITS)))

    def scores(self, adapter: str, instruction: str, questions: Sequence[str],
               answers: Sequence[str]) -> list[float]:
        """The expected 0-5 score of each (question, answer)."""
        texts = [judged_text(q, a) for q, a in zip(questions, answers, strict=True)]
        probs = self.distribution(instruction, texts, adapter)
        return (probs @ torch.arange(len(DIGITS), dtype=torch.float32)).tolist()

    def judge(self, task: Task, examples: Sequence[Example], adapter: str | None,
              split: str) -> list[Prediction]:
        """The verifier's judgement of each example, right when it is the score rounded."""
        texts = [judged_text(e.input, e.output) for e in examples]
        picked = self.distribution(instruction_of(task.instruction), texts, adapter).argmax(dim=-1).tolist()
        return [Prediction(split, text, digit_of(e.score or 0.0), DIGITS[p],
                           DIGITS[p] == digit_of(e.score or 0.0), 0.0)
                for text, e, p in zip(texts, examples, picked, strict=True)]


class CachedScorer:
    """A verification task's verifier as a reward's `Scorer` (prompt, answer) -> 0-5,
    scoring each distinct pair once."""

    def __init__(self, verifier: Verifier, adapter: str, instruction: str) -> None:
        self.verifier, self.adapter, self.instruction = verifier, adapter, instruction
        self._seen: dict[tuple[str, str], float] = {}

    def __call__(self, prompt: str, answer: str) -> float:
        key = (prompt, answer)
        if key not in self._seen:
            self._seen[key] = self.verifier.scores(self.adapter, self.instruction, [prompt],
                                                   [answer])[0]
        return self._seen[key]
