"""The (T, tau) search of balanced self-training against B-STaR's full grid, on one model and
the same dev prompts.

Fine-tunes a fresh adapter for `--sft-steps` on the first task of the bundled generative
stream (so that some samples are right and some wrong, as in a self-training round), then
on `--dev` train prompts draws B-STaR's grid (15 temperatures x 64 samples per prompt, tau
over every score that occurs) and the successive-halving search of `learner.exploration`,
and prints both picks, their balance scores on the grid's samples, and the samples each
drew. Writes `DIR/search.json`.

    python bench/bench_search.py --out bench-search                 # SmolLM2 (about 10 min)
    python bench/bench_search.py --model tiny --out bench-search    # the mechanics, fast
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
from synlearner.learner.exploration import (  # noqa: E402
    B_STAR_SAMPLES,
    B_STAR_TEMPERATURES,
    best_tau,
    full_grid,
    successive_halving,
)
from synlearner.learner.generation import SftGenerator  # noqa: E402
from synlearner.learner.selftrain import SelfTrainer  # noqa: E402


def main() -> None:
    ap = arguments(__doc__)
    ap.add_argument("--dev", type=int, default=4, help="dev prompts")
    ap.add_argument("--first-rung", type=int, default=4)
    ap.add_argument("--n-star", type=int, default=4)
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = GenerationConfig(model=args.model, max_steps=args.sft_steps, phases=("sft",))
    gen = SftGenerator(settings, BiEncoderClassifier().embedder, seed=args.seed)
    task = first_task()[1]
    t0 = time.perf_counter()
    outcome = gen.learn(task, [], LearnPlan(task.task_id))
    print(f"{task.task_id}: {args.sft_steps} SFT steps, exact match {outcome.final:.3f} "  # noqa: T201
          f"({time.perf_counter() - t0:.0f} s)")
    trainer = SelfTrainer(gen, settings.self_train, rewards.build(rewards.parse(task.reward)))
    dev = random.Random(args.seed).sample(list(task.train), args.dev)
    grid_draws: dict[float, list[list]] = {}  # type: ignore[type-arg]

    def on_dev(t: float, idx, k):  # type: ignore[no-untyped-def]
        got = trainer._score(task, task.task_id, [dev[i] for i in idx], k, t)
        if k == B_STAR_SAMPLES:
            grid_draws[t] = got
        return got

    t1 = time.perf_counter()
    grid = full_grid(on_dev, len(dev), B_STAR_TEMPERATURES, B_STAR_SAMPLES, args.n_star)
    grid_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    search = successive_halving(on_dev, len(dev), B_STAR_TEMPERATURES, args.first_rung,
                                args.n_star)
    search_s = time.perf_counter() - t2
    # the search's pick judged on the grid's samples at that temperature
    pick_on_grid = best_tau(grid_draws[search.temperature], args.n_star)
    ranking = sorted(grid.scores, key=lambda t: (-grid.scores[t], t))
    out = {
        "model": args.model, "task": task.task_id, "sft_steps": args.sft_steps,
        "exact_match_after_sft": outcome.final, "dev_prompts": args.dev,
        "grid": {"temperature": grid.temperature, "tau": grid.tau, "balance": grid.balance,
                 "samples": grid.samples, "seconds": grid_s,
                 "balance_by_temperature": grid.scores},
        "search": {"temperature": search.temperature, "tau": search.tau,
                   "balance": search.balance, "samples": search.samples, "seconds": search_s,
                   "balance_on_grid_samples": pick_on_grid[1], "tau_on_grid_samples": pick_on_grid[0],
                   "rank_in_grid": ranking.index(search.temperature) + 1},
        "same_temperature": search.temperature == grid.temperature,
        "same_tau": search.tau == grid.tau,
        "samples_ratio": search.samples / grid.samples,
    }
    (out_dir / "search.json").write_text(json.dumps(out, indent=2))
    print(f"grid:   T {grid.temperature:.2f} tau {grid.tau:.3f} balance {grid.balance:.3f}, "  # noqa: T201
          f"{grid.samples} samples, {grid_s:.0f} s")
    print(f"search: T {search.temperature:.2f} tau {search.tau:.3f} balance {search.balance:.3f}, "  # noqa: T201
          f"{search.samples} samples ({out['samples_ratio']:.3f} of the grid), {search_s:.0f} s")
    print(f"search's T on the grid's samples: balance {pick_on_grid[1]:.3f} (tau "  # noqa: T201
          f"{pick_on_grid[0]:.3f}), rank {out['search']['rank_in_grid']} of "
          f"{len(ranking)}; same T: {out['same_temperature']}, same tau: {out['same_tau']}")


if __name__ == "__main__":
    main()
