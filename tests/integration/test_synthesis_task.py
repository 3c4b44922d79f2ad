"""A synthesis task on the tiny causal LM, judged by the real MiniLM classifier."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

WORDS = {
    "sport": ("football", "tennis", "goal", "match", "team", "player", "stadium", "coach"),
    "food": ("bread", "cheese", "soup", "pasta", "salad", "apple", "cake", "rice"),
}


def texts(label: str, n: int, seed: int) -> list[str]:
    """Five words of the label's bank in a random order: new combinations are easy to
    write, and a copy of a train text is rare by chance."""
    rng = random.Random(seed)
    return [" ".join(["the", *rng.sample(WORDS[label], 5)]) for _ in range(n)]


def synthesis_task(task_id: str = "write", judge: str | None = None, **spec: Any) -> bytes:
    train = [{"input": t, "output": lab} for lab in WORDS for t in texts(lab, 12, 1)]
    evals = [{"input": t, "output": lab} for lab in WORDS for t in texts(lab, 6, 2)]
    return json.dumps({
        "schema": "synlearner.task/v1", "task_id": task_id, "kind": "synthesis",
        "instruction": "Write a short note.", "labels": list(WORDS), "train": train,
        "eval": evals, "synthesis": {"descriptions": {"sport": "about a game"},
                                     "attributes": {"length": ["short"]}, "count": 8,
                                     "judge": judge, **spec}}).encode()


def test_the_daemon_learns_synthesis_tasks_judged_by_a_learned_classifier(
        tiny_causal_lm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A classification task, then two synthesis tasks it judges (the second starts from the
    first's adapter if the start check keeps it, and replays its texts), one whose judge
    was never learned (a dead letter naming the field), and a few-shot classification task
    that asks the first to write for it (the data flywheel)."""
    from synlearner.daemon.build import build_daemon
    from synlearner.daemon.config import load_config
    from synlearner.daemon.state import State
    from synlearner.daemon.tools.cli import main
    from synlearner.stream import SpoolPublisher
    from synlearner.stream.spool_dlq import list_dead_letters
    from tests.integration.test_generation import drain_and_scrape

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({  # YAML, written as JSON
        "state_dir": str(tmp_path / "state"), "stream": {"poll_timeout_s": 0.2},
        "learner": {"train": {"max_steps": 8}, "generation": {
            "model": str(tiny_causal_lm), "max_steps": 30, "lr": 1e-2,
            "synthesis": {"steps": 2, "max_new_tokens": 12, "max_length": 160}}}}))
    cfg = load_config(config, {"daemon.http.port": 0, "daemon.drain": True}, env={})
    topics = json.loads(synthesis_task("topics"))
    topics.update(kind="classification", instruction="")
    del topics["synthesis"]
    stream = [("topics", json.dumps(topics).encode()),
              ("write", synthesis_task("write", judge="topics")),
              ("orphan", synthesis_task("orphan", judge="nothing")),
              ("write-more", synthesis_task("write-more", judge="topics", count=4))]
    few = {**topics, "task_id": "few", "train": topics["train"][:4] + topics["train"][12:16],
           "synthesize": {"count": 8, "from": "write"}}
    stream.append(("few", json.dumps(few).encode()))
    for task_id, body in stream:
        SpoolPublisher(cfg.spool_dir).submit(body, task_id)
    text = drain_and_scrape(cfg)
    state = State.read(cfg.state_dir)
    assert [(e.task_id, e.kind) for e in state.entries] == [
        ("topics", "classification"), ("write", "synthesis"), ("write-more", "synthesis"),
        ("few", "classification")]
    write, more = state.latest("write"), state.latest("write-more")
    assert write is not None and more is not None
    # the untrained model writes no label's words; after SFT and GRPO many texts are new
    # combinations of the asked label's words, which the learned judge labels so
    assert write.final - write.zero_shot >= 0.3, (write.zero_shot, write.final)
    grpo, own = write.extras["grpo"], write.extras["synthesis"]  # the method's, the kind's
    assert grpo["samples"] == 2 * 2 * 4 and write.steps == 30 + 2  # steps x requests x G
    assert 0.0 <= grpo["sample_agreement"] <= 1.0 and own["eval_agreement"] == write.final
    assert own["eval_pairwise_distance"] > 0.0 and own["eval_distinct_2"] > 0.0
    assert write.seconds["learner_sft"] > 0 and write.seconds["learner_grpo"] > 0
    assert more.extras["grpo"]["samples"] == 2 * 2 * 4
    # replay is drawn from past synthesis tasks only ("write"), never crowded out by the
    # judge's copies of the same texts: the full ratio of its 24 train texts, every time
    assert write.replay_examples == 0  # no synthesis task before it
    assert more.replay_examples == round(cfg.memory.replay.ratio * 24) > 0
    # the nearest past synthesis task's adapter, kept: the task's texts are likelier under it
    assert more.init_from == "write"
    start = more.extras["synthesis"]
    assert start["start_logp_transferred"] >= start["start_logp_fresh"]
    (dead,) = list_dead_letters(cfg.spool_dir)
    assert dead.reason == "synthesis.judge: 'nothing' is not a learned classification task"
    assert "synlearner_synthesis_samples_total 32.0" in text
    assert "synlearner_synthesis_eval_agreement_ratio" in text
    flywheel = state.latest("few")
    assert flywheel is not None and flywheel.extras["synthesis"]["generated"] == 8
    kept = int(flywheel.extras["synthesis"]["kept"])
    assert flywheel.train_examples == 8 + kept
    assert f'synlearner_synthetic_examples_total{{outcome="kept"}} {kept}.0' in text
    parts = build_daemon(cfg)  # restarted: the judge comes back with the adapter
    try:
        synthetic = parts.memory.records(task_id="few", split="synthetic", kind="experience")
        assert len(synthetic) == kept and all(r.target in WORDS for r in synthetic)
        attempts = parts.memory.records(task_id="write", split="self_train")
        syn, task = parts.daemon.learners["synthesis"], state.load_task("write")
        assert syn.judge_of(task).adapter == "topics"  # type: ignore[attr-defined]
        assert syn.evaluate(task, "write") == pytest.approx(write.final)  # as when learned
        written = syn.predict(task, ["food"], "write")[0]
    finally:
        parts.close()
    assert set(written.split()) & set(WORDS["food"]), written
    assert {r.target for r in attempts} == set(WORDS)  # the plan is label-balanced
    assert any(r.kind == "error" for r in attempts)  # mistakes reach the error memory
    # refinement at inference, scored by the task's judge
    capsys.readouterr()  # what the training printed
    assert main(["--config", str(config), "predict", "--task", "write", "--refine", "2",
                 "sport", "food"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in lines] == ["sport", "food"]
    assert all(1 <= r["rounds"] <= 2 and 0 <= r["score"] <= 5 for r in lines), lines
    assert all(r["rounds"] == 2 or r["score"] >= 4.5 for r in lines), lines
