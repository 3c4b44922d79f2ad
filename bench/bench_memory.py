"""Memory benchmark: add throughput, search latency (flat vs HNSW), replay sampling time.

Ratios are against the flat index measured in the same run. Usage:
    python bench/bench_memory.py [--records 50000] [--queries 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from synlearner.memory import ExperienceMemory, HashingEmbedder, Record, ReplayRequest, TaskInfo

WORDS = (
    "pasta battery room plot team senate chip study clinic refund courier password "
    "great awful slow fast broken lovely cold warm cheap pricey loud quiet"
).split()


def texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=8)) + f" {i}" for i in range(n)]


def run(kind: str, n: int, queries: int, emb: HashingEmbedder) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        mem = ExperienceMemory(Path(tmp), emb, index_kind=kind)
        data = texts(n, 0)
        t = time.perf_counter()
        for start in range(0, n, 1000):
            chunk = data[start : start + 1000]
            task = f"task-{start // 1000}"
            mem.register_task(TaskInfo(task, "classification", "?", ("a", "b"), len(chunk)),
                              chunk[:50])
            mem.add([Record(task, x, "a", "error" if i % 10 == 0 else "experience")
                     for i, x in enumerate(chunk)])
        add_s = time.perf_counter() - t
        q = emb.embed(texts(queries, 1))
        t = time.perf_counter()
        for row in q:
            mem.search(row[None, :], 10)
        search_ms = (time.perf_counter() - t) / queries * 1e3
        t = time.perf_counter()
        mem.replay("errors_first", ReplayRequest("new", q[:48], 48))
        replay_ms = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        mem.flush()
        flush_ms = (time.perf_counter() - t) * 1e3
        mem.close()
    return {"add_per_s": n / add_s, "search_ms": search_ms, "replay_ms": replay_ms,
            "flush_ms": flush_ms}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    emb = HashingEmbedder(384)
    results = {kind: run(kind, args.records, args.queries, emb) for kind in ("flat", "hnsw")}
    base = results["flat"]
    print(f"memory benchmark: {args.records} records, dim 384, {args.queries} queries")  # noqa: T201
    print(f"{'index':<6} {'add/s':>9} {'search ms':>10} {'vs flat':>8} {'replay ms':>10} {'flush ms':>9}")  # noqa: T201
    for kind, r in results.items():
        print(f"{kind:<6} {r['add_per_s']:>9.0f} {r['search_ms']:>10.3f} "  # noqa: T201
              f"{r['search_ms'] / base['search_ms']:>7.2f}x {r['replay_ms']:>10.1f} {r['flush_ms']:>9.1f}")


if __name__ == "__main__":
    main()
