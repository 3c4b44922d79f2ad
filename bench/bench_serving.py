"""Serving latency of `synlearner serve` on the embedded MiniLM, against a bare forward pass
of the same model on the same inputs, timed in the same run.

    python bench/bench_serving.py --out DIR [--stream FOLDER]

It learns two small demo tasks (or the first two of a stream's task files, 24 steps each)
with the daemon (spool, drain) into a temporary state directory, serves it with the API on
a real uvicorn server on a free loopback port, and measures over HTTP, writing
DIR/serving.json:

- `adapter_switch_ms_p50`: switching the resident model between the two tasks' adapters;
- predict p50/p99 for 1 and for 32 inputs, and the same for the bare forward pass
  (tokenise, MiniLM forward, mean-pool; a base model loaded on its own), with the ratios
  `predict_p99_ratio_1` and `predict_p99_ratio_32` (p99 over the bare pass's p99);
- `train_throughput_ratio`: training examples per second of a task learned while a client
  keeps asking the server for predictions, over the same task learned alone, in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from synlearner.daemon.tools.demo import demo_stream  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def learn(state: Path, work: Path, tasks: list[dict]) -> Path:  # type: ignore[type-arg]
    cfg = work / "config.yaml"
    cfg.write_text(f"state_dir: {state}\nstream: {{poll_timeout_s: 0.2}}\n"
                   "learner: {train: {max_steps: 24, epochs: 3.0}}\ndaemon: {http: {port: 0}}\n")
    files = []
    for t in tasks:
        files.append(work / f"{t['task_id']}.json")
        files[-1].write_text(json.dumps(t))
    cli = [sys.executable, "-m", "synlearner.daemon.tools.cli", "--config", str(cfg)]
    subprocess.run([*cli, "submit", *map(str, files)], check=True, capture_output=True)
    subprocess.run([*cli, "run", "--drain"], check=True, capture_output=True)
    return cfg


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--requests", type=int, default=100, help="timed requests per size")
    ap.add_argument("--stream", help="a folder of task files (default: the demo stream)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import httpx
    import torch
    import uvicorn
    from transformers import AutoModel

    from synlearner.daemon.api import create_app
    from synlearner.daemon.build import build_learners
    from synlearner.daemon.config import load_config
    from synlearner.daemon.serving import Predictor
    from synlearner.learner.base import LearnPlan
    from synlearner.stream import Limits, parse_task

    if args.stream:
        tasks = [json.loads(p.read_text()) for p in sorted(Path(args.stream).glob("*.json"))]
    else:
        tasks = demo_stream(seed=7, n_train=48, n_eval=32)
    restaurants, news = tasks[0], tasks[1]
    texts = [e["input"] for t in tasks[:2] for e in t["eval"]]
    texts = texts[:: max(1, len(texts) // 256)]  # both tasks' inputs, mixed
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg = load_config(learn(work / "state", work, [restaurants, news]))
        learners = build_learners(cfg)
        predictor = Predictor(cfg, learners)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(predictor, cfg.daemon.api), host="127.0.0.1",
                                               port=port, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

        def ask(task: dict, batch: list[str]) -> None:  # type: ignore[type-arg]
            r = client.post("/v1/predict", json={"task_id": task["task_id"], "inputs": batch})
            r.raise_for_status()

        for task in (restaurants, news):  # loads both adapters, warms up
            for _ in range(3):
                ask(task, texts[:32])
        clf = learners["classification"]
        keys = [restaurants["task_id"], news["task_id"]]
        switch = []
        for i in range(200):
            t0 = time.perf_counter()
            clf.bank.activate(keys[i % 2])
            switch.append(time.perf_counter() - t0)

        one = timed(lambda: ask(restaurants, texts[:1]), args.requests)
        many = timed(lambda: ask(restaurants, texts[:32]), args.requests)

        base = AutoModel.from_pretrained(str(clf.path)).eval()
        tok = clf.tokenizer

        def bare(batch: list[str]) -> None:
            with torch.inference_mode():
                enc = tok(batch, padding=True, truncation=True, max_length=clf.settings.max_length,
                          return_tensors="pt")
                hidden = base(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1)
                torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

        for _ in range(3):
            bare(texts[:32])
        bare_one = timed(lambda: bare(texts[:1]), args.requests)
        bare_many = timed(lambda: bare(texts[:32]), args.requests)

        # training throughput, alone and while the server answers a client without pause
        trainer = build_learners(cfg)["classification"]
        task = parse_task(json.dumps(tasks[2]).encode(), Limits())

        def train_rate(tag: str) -> float:
            res = trainer.learn(task, [], LearnPlan(f"{task.task_id}-{tag}", steps=40))
            return res.steps * trainer.settings.batch_size / res.seconds["train"]

        alone = train_rate("alone")
        stop = threading.Event()
        served = [0]

        def keep_asking() -> None:
            while not stop.is_set():
                ask(news, texts[:1])
                served[0] += 1

        asker = threading.Thread(target=keep_asking, daemon=True)
        asker.start()
        busy = train_rate("serving")
        stop.set()
        asker.join()
        server.should_exit = True
        thread.join(timeout=10)

    result = {
        "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "adapter_switch_ms_p50": round(float(np.percentile(np.asarray(switch) * 1000, 50)), 3),
        "predict_1": percentiles(one), "predict_32": percentiles(many),
        "bare_forward_1": percentiles(bare_one), "bare_forward_32": percentiles(bare_many),
        "train_examples_per_s_alone": round(alone, 2),
        "train_examples_per_s_serving": round(busy, 2),
        "requests_served_while_training": served[0],
    }
    for n in (1, 32):
        result[f"predict_p99_ratio_{n}"] = round(result[f"predict_{n}"]["p99_ms"]
                                                 / result[f"bare_forward_{n}"]["p99_ms"], 2)
    result["train_throughput_ratio"] = round(busy / alone, 3)
    (out / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
