"""The whole loop on the real embedded MiniLM: learn, reload, remember, export metrics."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from synlearner.daemon.build import build_daemon, build_learners
from synlearner.daemon.config import load_config
from synlearner.daemon.service import Service
from synlearner.daemon.state import State
from synlearner.daemon.tools.demo import demo_stream
from synlearner.learner.base import LearnPlan
from synlearner.memory.records import read_counts
from synlearner.stream import JsonlResultSink, Limits, SpoolPublisher, parse_task

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def small_stream() -> list[dict]:  # type: ignore[type-arg]  # task messages
    tasks = demo_stream(seed=3, n_train=48, n_eval=40)
    return [tasks[0], tasks[1], tasks[2]]  # restaurants, news topics, electronics


def config(tmp_path: Path, **over):  # type: ignore[no-untyped-def]
    base = {"state_dir": str(tmp_path / "state"), "daemon.http.port": 0, "daemon.drain": True,
            "learner.train": {"max_steps": 40, "epochs": 3.0}, "stream.poll_timeout_s": 0.2}
    return load_config(ROOT / "configs" / "default.yaml", {**base, **over}, env={})


def test_three_tasks_end_to_end(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    publisher = SpoolPublisher(cfg.spool_dir)
    for msg in small_stream():
        publisher.submit(json.dumps(msg).encode(), msg["task_id"])
    publisher.submit(b'{"schema": "synlearner.task/v1", "task_id": "../x"}', "bad")
    parts = build_daemon(cfg)
    service = Service(cfg, parts)
    service.start()
    assert service.http is not None
    url = f"http://127.0.0.1:{service.http.port}/metrics"
    try:
        parts.daemon.run()
        metrics_text = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        service.close()

    state = State.load(cfg.state_dir)
    assert [e.task_id for e in state.entries] == [m["task_id"] for m in small_stream()]
    for entry, msg in zip(state.entries, small_stream(), strict=True):
        chance = 1 / len(msg["labels"])
        assert entry.final >= chance + 0.2, (entry.task_id, entry.final)
    electronics = state.entries[2]
    probe = electronics.probe
    assert probe is not None and probe["candidate"] == "reviews-restaurants"  # the similar task
    assert electronics.init_from == probe["chosen"]  # the start the held-out check kept
    assert (electronics.replay_examples > 0) == probe["replay"]
    assert len(state.matrix) == 3 and all(v is not None for v in state.matrix[-1])
    assert len(state.agnostic) == 3 and state.agnostic_metrics() is not None
    # the defaults answer without a task id by routing to a task's adapter: nothing merged
    assert not (cfg.state_dir / "adapters" / "@consolidated-classification").exists()

    results = JsonlResultSink(cfg.spool_dir / "results.jsonl").read()
    assert sorted(r["status"] for r in results) == ["invalid", "learned", "learned", "learned"]
    invalid = next(r for r in results if r["status"] == "invalid")
    assert invalid["error"].startswith("task_id:")
    assert (cfg.spool_dir / "failed").exists() and len(list((cfg.spool_dir / "done").iterdir())) == 3

    # the error memory was filled
    counts = read_counts(cfg.state_dir / "memory")
    assert counts["experience"] == sum(len(m["train"]) + len(m["eval"]) for m in small_stream())
    assert counts["error"] > 0 and counts["tasks"] == 3

    for line in ["synlearner_tasks_learned_total 3.0", "synlearner_tasks_dead_lettered_total 1.0",
                 'synlearner_task_accuracy_ratio{eval_task="news-topics"}',
                 "synlearner_acc_ratio", "synlearner_fwt_ratio",
                 'synlearner_task_agnostic_ratio{metric="bwt"}',
                 'synlearner_memory_records{kind="error"}',
                 'synlearner_task_phase_duration_seconds_count{phase="train"} 3.0',
                 'synlearner_memory_search_duration_seconds_count{operation="replay"}']:
        assert line in metrics_text, line

    # adapters reload with identical predictions: in a fresh learner, and with plain PEFT
    learners = build_learners(cfg)
    clf = learners["classification"]
    original = parts.daemon.learners["classification"]
    for entry in state.entries:
        task = state.load_task(entry.task_id)
        clf.load_adapter(entry.task_id, cfg.state_dir / entry.adapter)
        texts = [e.input for e in task.eval]
        assert clf.predict(task, texts, entry.task_id) == original.predict(task, texts, entry.task_id)
        assert clf.evaluate(task, entry.task_id) == pytest.approx(entry.final)


def test_adapter_loads_with_peft_from_pretrained(tmp_path: Path, classifier) -> None:  # type: ignore[no-untyped-def]
    import torch
    from peft import PeftModel
    from transformers import AutoModel

    task = parse_task(json.dumps(small_stream()[0]).encode(), Limits())
    classifier.learn(task, [], LearnPlan(task.task_id))
    classifier.save_adapter(task.task_id, tmp_path / task.task_id)
    saved = json.loads((tmp_path / task.task_id / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["r"] == 8
    base = AutoModel.from_pretrained(str(classifier.path))
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / task.task_id))
    batch = classifier.tokenizer(["The food was not good at all."], return_tensors="pt")
    with torch.no_grad(), classifier.bank.use(task.task_id):
        ours = classifier.bank.model(**batch).last_hidden_state
    with torch.no_grad():
        theirs = peft_model(**batch).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5)
    with torch.no_grad(), classifier.bank.use(None):
        plain = classifier.bank.model(**batch).last_hidden_state
    assert not torch.allclose(plain, theirs, atol=1e-4)  # the adapter changes the model


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_builds_the_real_daemon(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path, {"state_dir": str(tmp_path)}, env={})
    parts = build_daemon(cfg)
    assert set(parts.daemon.learners) == {"classification", "generation", "preference",
                                          "verification", "synthesis"}
    # the generation model (SmolLM2 by default) loads with the first generation task only
    assert parts.daemon.learners["generation"]._bank is None  # type: ignore[attr-defined]
    assert parts.memory.embedder.dim == 384
    parts.close()


def test_learning_is_reproducible(classifier) -> None:  # type: ignore[no-untyped-def]
    task = parse_task(json.dumps(small_stream()[2]).encode(), Limits())
    first = classifier.learn(task, [], LearnPlan(task.task_id))
    second = classifier.learn(task, [], LearnPlan(task.task_id))  # same seed: the adapter is re-created
    assert first.final == second.final and first.train_loss == second.train_loss
    assert [p.prediction for p in first.predictions] == [p.prediction for p in second.predictions]
