"""Learning benchmark on the embedded MiniLM: seconds per task and training examples per
second, without replay (baseline) and with the default replay ratio, in the same process.

    python bench/bench_train.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synlearner.daemon.tools.demo import demo_stream  # noqa: E402
from synlearner.learner.base import LearnPlan
from synlearner.learner.classifier import BiEncoderClassifier  # noqa: E402
from synlearner.learner.config import TrainConfig  # noqa: E402
from synlearner.memory import ExperienceMemory, Record, ReplayRequest, TaskInfo  # noqa: E402
from synlearner.stream import Limits, parse_task  # noqa: E402


def main() -> None:
    tasks = [parse_task(json.dumps(t).encode(), Limits()) for t in demo_stream()]
    clf = BiEncoderClassifier(train=TrainConfig(max_steps=120, epochs=4.0))
    with tempfile.TemporaryDirectory() as tmp:
        mem = ExperienceMemory(Path(tmp), clf.embedder)
        for t in tasks[:2]:
            mem.register_task(TaskInfo(t.task_id, t.kind, t.instruction, t.labels, len(t.train)),
                              [e.input for e in t.train])
            mem.add([Record(t.task_id, e.input, e.output) for e in t.train])
        target = tasks[2]
        queries = clf.embedder.embed([e.input for e in target.train])
        rows = []
        for ratio in (0.0, 0.5, 1.0):
            n = round(ratio * len(target.train))
            replay = mem.replay("errors_first", ReplayRequest(target.task_id, queries, n)) if n else []
            t0 = time.perf_counter()
            out = clf.learn(target, replay, LearnPlan(target.task_id))
            secs = time.perf_counter() - t0
            examples = out.steps * clf.settings.batch_size
            rows.append((ratio, len(replay), out.steps, secs, examples / out.seconds["train"],
                         out.final))
        n_eval = 512
        texts = [e.input for t in tasks for e in t.eval][:n_eval]
        t0 = time.perf_counter()
        clf.predict(target, texts, target.task_id)
        eval_rate = len(texts) / (time.perf_counter() - t0)
    base = rows[0][3]
    print(f"learning one task ({target.task_id}, {len(target.train)} train examples), MiniLM, "  # noqa: T201
          f"{os.cpu_count()} cores")
    print(f"{'replay':>6} {'replayed':>8} {'steps':>5} {'secs':>6} {'vs none':>8} {'ex/s':>6} {'final':>6}")  # noqa: T201
    for ratio, n, steps, secs, rate, final in rows:
        print(f"{ratio:>6.1f} {n:>8} {steps:>5} {secs:>6.1f} {secs / base:>7.2f}x {rate:>6.0f} {final:>6.3f}")  # noqa: T201
    print(f"evaluation: {eval_rate:.0f} examples/s")  # noqa: T201


if __name__ == "__main__":
    main()
