"""Where a task's wall time goes: training against everything else, over a whole stream.

Runs STREAM (a task file, a folder of them, `bundled`, or `--synthetic N` small generated
tasks) through the daemon as it is configured (defaults, or `--config`), the whole stream
queued up front as a backlog, and writes DIR/overhead.json:

- per task: `task_id`, `index`, `train_s` (the forward/backward/optimiser steps that made
  its adapter, the probe's winning arm included), `overhead_s` (the rest of the task's wall
  time: scoring, the probe's other arms, memory, persistence, evaluation), `overhead_ratio`
  = overhead_s / (train_s + overhead_s), `rss_mb` after the task, and its phase seconds;
- `idle`: the work the daemon left for the idle stream (the task-agnostic merge and scores)
  and its seconds, after the last task;
- `summary`: `overhead_ratio_max`, `overhead_ratio_last`, `rss_peak_mb`,
  `rss_growth_mb_per_task` (least-squares slope of `rss_mb` after the fifth task), and
  `train_throughput_ratio`: the daemon's training examples per second over a bare PEFT +
  PyTorch loop (the same model, LoRA, batch size and max length, the same loss, on the same
  examples: the task's train split and the replay it was trained with) timed in this
  process after each task.

    python bench/bench_overhead.py ../shared/data/std4 --out overhead-std4
    python bench/bench_overhead.py --synthetic 50 --out overhead-50
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from peft import get_peft_model  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from synlearner.bench.streams.bundled import benchmark_messages  # noqa: E402
from synlearner.daemon.build import build_daemon  # noqa: E402
from synlearner.daemon.config import load_config  # noqa: E402
from synlearner.daemon.tools.cli import _read_task_files  # noqa: E402
from synlearner.learner.adapters import peft_lora  # noqa: E402
from synlearner.learner.model import resolve_model_path  # noqa: E402
from synlearner.memory.base import ReplayItem  # noqa: E402
from synlearner.stream.boundary import decode  # noqa: E402
from synlearner.stream.schema import Task  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic(n: int) -> list[bytes]:
    """`n` small tasks: the bundled benchmark's thirteen, regenerated with new seeds and ids."""
    out: list[bytes] = []
    round_ = 0
    while len(out) < n:
        for _, raw in benchmark_messages(seed=100 + round_, n_train=48, n_eval=32):
            msg = json.loads(raw)
            msg["task_id"] = f"{msg['task_id']}-{round_}"
            out.append(json.dumps(msg).encode())
        round_ += 1
    return out[:n]


class BareLoop:
    """The training computation with nothing around it: PEFT LoRA on the same base model,
    mean-pooled cosine logits against the label embeddings, cross-entropy, AdamW."""

    def __init__(self, cfg: Any) -> None:
        lc = cfg.learner
        path = resolve_model_path(lc.model.path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModel.from_pretrained(str(path))
        self.device = next(iter(model.parameters())).device
        if lc.model.device == "cuda" or (lc.model.device == "auto" and torch.cuda.is_available()):
            self.device = torch.device("cuda")
            model = model.to(self.device)
        self.model = get_peft_model(model, peft_lora(lc.lora))
        self.train = lc.train

    def _encode(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=self.train.max_length, return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)

    def examples_per_second(self, task: Task, steps: int,
                            replay: Sequence[ReplayItem] = ()) -> float:
        """Train `steps` batches drawn from the task's train split plus `replay` (the same
        examples the daemon trained on): each example against its own task's labels, the
        label sets of the batch in one forward pass, as the daemon's loss does."""
        items = [(e.input, task.labels.index(e.output), tuple(task.labels), task.instruction)
                 for e in task.train]
        items += [(r.record.input, r.task.labels.index(r.record.target), tuple(r.task.labels),
                   r.task.instruction) for r in replay if r.record.target in r.task.labels]
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.train.lr)
        rng = random.Random(0)
        self.model.train()
        bs, tpl = self.train.batch_size, self.train.label_template
        started = time.perf_counter()
        for _ in range(steps):
            batch = [items[rng.randrange(len(items))] for _ in range(bs)]
            texts = self._encode([text for text, *_ in batch])
            groups: dict[tuple[tuple[str, ...], str], list[int]] = {}
            for i, (_, _, labels, instruction) in enumerate(batch):
                groups.setdefault((labels, instruction), []).append(i)
            label_vecs = self._encode([tpl.format(label=lab, instruction=ins).strip()
                                       for labels, ins in groups for lab in labels])
            loss, offset = texts.new_zeros(()), 0
            for (labels, _), rows in groups.items():
                logits = texts[rows] @ label_vecs[offset:offset + len(labels)].T
                offset += len(labels)
                target = torch.tensor([batch[i][1] for i in rows], device=self.device)
                loss = loss + F.cross_entropy(logits / self.train.temperature, target,
                                              reduction="sum")
            loss = loss / bs
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return steps * bs / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stream", nargs="?", help="a task file or folder of them, or 'bundled'")
    ap.add_argument("--synthetic", type=int, default=0, help="N small generated tasks instead")
    ap.add_argument("--out", required=True, help="folder for overhead.json")
    ap.add_argument("--config", help="a daemon config file (default: the defaults)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a dotted config override, e.g. learner.model.device=cuda")
    ap.add_argument("--bare-steps", type=int, default=8,
                    help="steps of the bare loop timed after each task (0: skip)")
    args = ap.parse_args()
    if args.synthetic:
        messages = synthetic(args.synthetic)
    elif args.stream == "bundled":
        messages = [raw for _, raw in benchmark_messages()]
    elif args.stream:
        messages = [raw for _, raw in _read_task_files([args.stream])]
    else:
        ap.error("give STREAM or --synthetic N")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synlearner-overhead-") as tmp:
        overrides: dict[str, Any] = dict(kv.split("=", 1) for kv in args.set)
        overrides.update({"state_dir": tmp, "stream.kind": "memory", "daemon.drain": True,
                          "daemon.http.enabled": False, "daemon.log_level": "WARNING"})
        cfg = load_config(Path(args.config) if args.config else None, overrides, env={})
        report = run(cfg, messages, args.bare_steps)
    (out / "overhead.json").write_text(json.dumps(report, indent=1))
    s = report["summary"]
    print(f"summary: overhead ratio max {s['overhead_ratio_max']:.3f}, last "  # noqa: T201
          f"{s['overhead_ratio_last']:.3f}; RSS peak {s['rss_peak_mb']:.0f} MB, growth "
          f"{s['rss_growth_mb_per_task']:+.1f} MB/task; train throughput "
          f"{s['train_throughput_ratio']:.2f}x the bare loop; idle work "
          f"{report['idle']['seconds']:.1f} s; device {s['device']}; wrote {out / 'overhead.json'}")


def _arms(probe: dict[str, Any] | None) -> list[str]:
    """The starts the init probe trained (none: no probe; "checked before training": a
    task too short for a trained probe had its copied start checked untrained)."""
    if not probe:
        return []
    if probe["steps"] == 0:
        return ["checked before training"]
    return [arm for arm in ("fresh", "transferred", "alone") if probe.get(arm) is not None]


def run(cfg: Any, messages: list[bytes], bare_steps: int) -> dict[str, Any]:
    parts = build_daemon(cfg)
    daemon, source = parts.daemon, parts.daemon.source
    bare = BareLoop(cfg) if bare_steps > 0 else None
    for raw in messages:
        source.submit(raw, "")  # type: ignore[attr-defined]  # the in-memory source
    tasks, daemon_ex, daemon_s, bare_rates = [], 0, 0.0, []
    while (delivery := source.poll(0.0)) is not None:
        started = time.perf_counter()
        daemon.handle(delivery)
        wall = time.perf_counter() - started
        task = decode(delivery.raw, cfg.stream.limits)  # as the daemon read it
        entry = daemon.state.latest(task.task_id)
        if entry is None or entry.content_hash != task.content_hash:
            print(f"{task.task_id}: not learned (see the log)")  # noqa: T201
            continue
        sec = entry.seconds
        train_s = sec.get("learner_train", 0.0)
        row = {"task_id": task.task_id, "index": len(tasks), "wall_s": wall, "train_s": train_s,
               "overhead_s": wall - train_s, "overhead_ratio": (wall - train_s) / wall,
               "rss_mb": rss_mb(), "steps": entry.steps, "init_from": entry.init_from,
               "probe_arms": _arms(entry.probe),
               "train_examples_per_s": entry.steps * cfg.learner.train.batch_size / train_s,
               "phases": sec}
        daemon_ex += entry.steps * cfg.learner.train.batch_size
        daemon_s += train_s
        if bare is not None:
            # the replay the daemon trained with (the task's own records are excluded)
            replay = parts.memory.recall(task.task_id, [e.input for e in task.train],
                                         seed=cfg.learner.seed,
                                         task_kind=task.kind)[: entry.replay_examples]
            rate = bare.examples_per_second(task, bare_steps, replay)
            row["bare_examples_per_s"] = rate
            bare_rates.append((bare_steps * cfg.learner.train.batch_size, rate))
        tasks.append(row)
        print(f"{row['index']:>3} {task.task_id:<28} train {train_s:7.1f} s  overhead "  # noqa: T201
              f"{row['overhead_s']:6.1f} s  ratio {row['overhead_ratio']:.3f}  RSS "
              f"{row['rss_mb']:6.0f} MB  " + " ".join(
                  f"{k} {v:.1f}" for k, v in sec.items() if v >= 0.5 and k != "train"))
    started = time.perf_counter()
    daemon.run()  # the stream is empty now: the idle work runs, then the drained daemon stops
    idle = {"seconds": time.perf_counter() - started,
            "agnostic_measured": daemon.state.agnostic_measured()}
    parts.close()
    ratios = [t["overhead_ratio"] for t in tasks]
    later = [(t["index"], t["rss_mb"]) for t in tasks if t["index"] >= 5]
    growth = (float(np.polyfit([i for i, _ in later], [r for _, r in later], 1)[0])
              if len(later) >= 2 else 0.0)
    bare_rate = (sum(n for n, _ in bare_rates) / sum(n / r for n, r in bare_rates)
                 if bare_rates else float("nan"))
    summary = {
        "tasks": len(tasks), "overhead_ratio_max": max(ratios, default=0.0),
        "overhead_ratio_last": ratios[-1] if ratios else 0.0,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb_per_task": growth,
        "daemon_train_examples_per_s": daemon_ex / daemon_s if daemon_s else float("nan"),
        "bare_train_examples_per_s": bare_rate,
        "train_throughput_ratio": (daemon_ex / daemon_s) / bare_rate if daemon_s else float("nan"),
        "device": str(daemon.learners["classification"].device),  # type: ignore[attr-defined]
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
    }
    return {"tasks": tasks, "idle": idle, "summary": summary}


if __name__ == "__main__":
    main()
