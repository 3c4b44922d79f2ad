"""Inference batch size: seconds of one base-model pass over each task's train inputs.

Every inference pass of the classifier (the memory's indexing, the zero-shot and final
scores, the probe's held-out scores, promotion checks) sorts its inputs by length and runs
them in batches of `learner.train.eval_batch_size`. This times the base encoder's pass over
each task's train inputs at several batch sizes, in turns (each size `--repeats` times, the
embedding cache emptied before each pass), and prints each size's median seconds and its
ratio to the baseline size (64, the default before 32), measured in the same process.
It also prints the pass's arithmetic (multiply-adds x 2 of the encoder's linear layers and
attention over the tokens read, padding not counted) per second at the configured size,
against a large float32 matrix product timed in the same process: how far a faster kernel
could take these passes.

    python bench/bench_passes.py ../shared/data/std4
    python bench/bench_passes.py bundled
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synlearner.bench.streams.bundled import benchmark_messages  # noqa: E402
from synlearner.daemon.tools.cli import _read_task_files  # noqa: E402
from synlearner.learner.classifier import BiEncoderClassifier  # noqa: E402
from synlearner.stream.boundary import decode  # noqa: E402
from synlearner.stream.limits import Limits  # noqa: E402

BASELINE = 64


def pass_gflop(clf: BiEncoderClassifier, texts: list[str]) -> float:
    """GFLOP of one pass of a BERT-style encoder over `texts`, cut at `max_length`."""
    cfg = clf.bank.model.config
    h, layers, ff = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    lengths = [len(ids) for ids in clf.tokenizer(texts, truncation=True,
                                                 max_length=clf.settings.max_length)["input_ids"]]
    linear = 2 * layers * (4 * h * h + 2 * h * ff) * sum(lengths)
    attention = sum(4 * layers * n * n * h for n in lengths)  # scores and weighted sum
    return float(linear + attention) / 1e9


def matmul_gflops(n: int = 4096, repeats: int = 3) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stream", help="a task file, a folder of them, or `bundled`")
    ap.add_argument("--sizes", default="16,32,64,128")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")} | {BASELINE})
    raws = [raw for _, raw in (benchmark_messages() if args.stream == "bundled"
                               else _read_task_files([args.stream]))]
    clf = BiEncoderClassifier()
    configured = clf.settings.eval_batch_size
    sizes = sorted(set(sizes) | {configured})
    peak = matmul_gflops()
    print(f"float32 matrix product: {peak:.0f} GFLOP/s ({torch.get_num_threads()} threads)")
    for raw in raws:
        task = decode(raw, Limits())
        texts = [e.input for e in task.train]
        with clf.bank.use(None):
            clf._encode_all(texts[:64])  # warm-up
        seconds: dict[int, list[float]] = {s: [] for s in sizes}
        for _ in range(args.repeats):
            for size in sizes:
                clf.settings = clf.settings.model_copy(update={"eval_batch_size": size})
                clf._embedder._cache.clear()
                with clf.bank.use(None):
                    t = time.perf_counter()
                    clf._encode_all(texts)
                    seconds[size].append(time.perf_counter() - t)
        base = statistics.median(seconds[BASELINE])
        cells = "  ".join(f"{s}: {statistics.median(v):6.2f} s ({statistics.median(v) / base:.2f}x)"
                          for s, v in seconds.items())
        gflop = pass_gflop(clf, texts)
        rate = gflop / statistics.median(seconds[configured])
        print(f"{task.task_id:<24} {len(texts):>5} inputs  {cells}  |  {gflop:.0f} GFLOP, at "
              f"{configured}: {rate:.0f} GFLOP/s ({rate / peak:.2f} of the product's)", flush=True)


if __name__ == "__main__":
    main()
