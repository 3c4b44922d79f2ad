"""Refinement at inference (`predict --refine K`) against one pass of the same adapter:
accuracy and latency, on one model, in one process.

Learns the first task of the bundled generative stream (SFT, then DPO on its preference
phase) and a verifier for it (a verification task built from the same train prompts: the
reference scores 5, a near miss 0), then answers the task's eval prompts once, and again
with up to `--rounds` answers per prompt scored by the verifier. Prints the task's reward
(`numeric`: the last number in the answer is the sum), the verifier's held-out accuracy,
seconds per prompt for both and their ratio, and the rounds taken. Writes
`DIR/refine.json`.

    python bench/bench_refine.py --out bench-refine               # SmolLM2
    python bench/bench_refine.py --model tiny --out bench-refine  # the mechanics, fast
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _generation import arguments, first_task  # noqa: E402 (bench/ beside the script)

from synlearner.learner import rewards  # noqa: E402
from synlearner.learner.base import LearnPlan  # noqa: E402
from synlearner.learner.classifier import BiEncoderClassifier  # noqa: E402
from synlearner.learner.config import GenerationConfig  # noqa: E402
from synlearner.learner.generation import SftGenerator  # noqa: E402
from synlearner.stream.schema import Limits, parse_task  # noqa: E402


def near_miss(answer: str, rng: random.Random) -> str:
    return str(int(answer) + rng.choice([-10, -2, -1, 1, 2, 10]))


def verification_message(task: dict, seed: int) -> dict:  # type: ignore[type-arg]
    rng = random.Random(seed)

    def judged(rows: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        out = []
        for r in rows:
            out.append({"input": r["input"], "output": r["output"], "score": 5})
            out.append({"input": r["input"], "output": near_miss(r["output"], rng), "score": 0})
        return out

    return {"schema": "synlearner.task/v1", "task_id": "judge-" + task["task_id"],
            "kind": "verification", "train": judged(task["train"]), "eval": judged(task["eval"])}


def main() -> None:
    ap = arguments(__doc__)
    ap.add_argument("--dpo-steps", type=int, default=8)
    ap.add_argument("--verifier-steps", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=4.5)
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = GenerationConfig(
        model=args.model, max_steps=args.sft_steps, phases=("sft", "preference"),
        preference={"prompts": 16, "temperatures": [0.7, 1.3], "steps": args.dpo_steps,
                    "negatives": ["candidate", "template"]})
    gen = SftGenerator(settings, BiEncoderClassifier().embedder, seed=args.seed)
    message, task = first_task()
    judge = parse_task(json.dumps(verification_message(message, args.seed)).encode(), Limits())
    t0 = time.perf_counter()
    learned = gen.learn(task, [], LearnPlan(task.task_id))
    t1 = time.perf_counter()
    judged = gen.learn(judge, [], LearnPlan(judge.task_id, steps=args.verifier_steps))
    t2 = time.perf_counter()
    print(f"{task.task_id}: SFT {args.sft_steps} + DPO {args.dpo_steps} steps, exact match "  # noqa: T201
          f"{learned.final:.3f} ({t1 - t0:.0f} s); verifier {args.verifier_steps} steps, "
          f"held-out accuracy {judged.final:.3f} (zero-shot {judged.zero_shot:.3f}, {t2 - t1:.0f} s)")
    reward = rewards.build(rewards.parse(task.reward))
    texts = [e.input for e in task.eval]

    def mean_reward(answers: list[str]) -> float:
        return sum(reward(e.input, a, e.output) for e, a in zip(task.eval, answers, strict=True)) \
            / len(answers)

    t3 = time.perf_counter()
    once = gen.predict(task, texts, task.task_id)
    one_s = (time.perf_counter() - t3) / len(texts)
    t4 = time.perf_counter()
    refined = gen.refine(task, texts, task.task_id, args.rounds, args.threshold, judge.task_id)
    refine_s = (time.perf_counter() - t4) / len(texts)
    first_scores = [r.history[0][1] for r in refined]
    out = {
        "model": args.model, "task": task.task_id, "prompts": len(texts),
        "one_pass": {"reward": mean_reward(once), "seconds_per_prompt": one_s},
        "refine": {"rounds_max": args.rounds, "threshold": args.threshold,
                   "reward": mean_reward([r.answer for r in refined]),
                   "seconds_per_prompt": refine_s,
                   "mean_rounds": sum(r.rounds for r in refined) / len(refined),
                   "changed": sum(r.answer != a for r, a in zip(refined, once, strict=True)),
                   "mean_first_score": sum(first_scores) / len(first_scores),
                   "mean_best_score": sum(r.score for r in refined) / len(refined)},
        "latency_ratio": refine_s / one_s,
        "verifier": {"steps": args.verifier_steps, "held_out_accuracy": judged.final,
                     "zero_shot": judged.zero_shot},
        "adapter": {"sft_steps": args.sft_steps, "dpo_steps": args.dpo_steps,
                    "exact_match": learned.final},
    }
    (out_dir / "refine.json").write_text(json.dumps(out, indent=2))
    r = out["refine"]
    print(f"one pass: reward {out['one_pass']['reward']:.3f}, {one_s:.2f} s/prompt")  # noqa: T201
    print(f"refine (K {args.rounds}, threshold {args.threshold}): reward "  # noqa: T201
          f"{r['reward']:.3f}, {refine_s:.2f} s/prompt ({out['latency_ratio']:.2f}x), "
          f"mean rounds {r['mean_rounds']:.2f}, answers changed {r['changed']}, verifier score "
          f"{r['mean_first_score']:.2f} -> {r['mean_best_score']:.2f}")


if __name__ == "__main__":
    main()
