"""Preference and verification tasks on the tiny causal LM, and the verifier reward."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synlearner.learner.base import LearnPlan
from synlearner.stream import Limits, parse_task

pytestmark = pytest.mark.integration

THINGS = ("apple", "banana", "grass", "sky", "snow", "coal", "rose", "lemon")
COLOURS = ("red", "yellow", "green", "blue", "white", "black", "pink", "orange")
NOT_COLOURS = ("cat", "dog", "car", "tree", "house", "river", "chair", "bread")


def task_bytes(task_id: str, kind: str, train: list[dict[str, Any]], evals: list[dict[str, Any]],
               **extra: Any) -> bytes:
    return json.dumps({"schema": "synlearner.task/v1", "task_id": task_id, "kind": kind,
                       "instruction": extra.pop("instruction", "Name the colour."),
                       "train": train, "eval": evals, **extra}).encode()


def judge_task(task_id: str = "judge") -> bytes:
    """Answers that are colour words score 5, others 0. The eval split repeats training
    judgements (as the colour task does): the untrained tiny model learns them in a hundred
    steps but does not generalise to new questions; a constant judge scores 0.5."""
    rows = [{"input": f"the {t}?", "output": good, "score": 5}
            for t, good in zip(THINGS, COLOURS, strict=True)]
    rows += [{"input": f"the {t}?", "output": bad, "score": 0}
             for t, bad in zip(THINGS, NOT_COLOURS, strict=True)]
    held = [rows[0], rows[8], rows[3], rows[12]]  # 5, 0, 5, 0
    return task_bytes(task_id, "verification", rows * 3, held, instruction="Score 0-5.")


def preference_task(task_id: str = "prefs") -> bytes:
    rows = [{"input": t, "output": good, "rejected": bad}
            for t, good, bad in zip(THINGS, COLOURS, NOT_COLOURS, strict=True)]
    return task_bytes(task_id, "preference", rows, rows)


def colours_task(task_id: str, reward: Any, methods: list[str]) -> bytes:
    rows = [{"input": t, "output": c} for t, c in zip(THINGS, COLOURS, strict=True)]
    return task_bytes(task_id, "generation", rows * 2, rows, reward=reward, methods=methods)


def generator(tiny_causal_lm: Path, embedder: Any, **over: Any) -> Any:
    from synlearner.learner.config import GenerationConfig
    from synlearner.learner.generation import SftGenerator

    settings = {"model_path": str(tiny_causal_lm), "max_steps": 60, "batch_size": 8, "lr": 5e-3,
                **over}
    return SftGenerator(GenerationConfig(**settings), embedder)


def test_a_verifier_learns_to_score_and_is_a_generation_task_reward(  # type: ignore[no-untyped-def]
        tiny_causal_lm: Path, classifier, tmp_path: Path) -> None:
    # 120 steps: at 60 the tiny model learned the judgements for about a quarter of the
    # seeds (0-19); at 120, for each of 0-9
    gen = generator(tiny_causal_lm, classifier.embedder, max_steps=120)
    judge = parse_task(judge_task(), Limits())
    outcome = gen.learn(judge, [], LearnPlan(judge.task_id))
    assert outcome.final >= 0.75, outcome  # the digit it judges most likely
    train = [p.correct for p in outcome.predictions if p.split == "train"]
    assert sum(train) / len(train) >= 0.75
    # the expected digit ranks every colour answer above every other answer
    scores = gen.verifier.scores("judge", "Score 0-5.", [f"the {t}?" for t in THINGS] * 2,
                                 [*COLOURS, *NOT_COLOURS])
    assert min(scores[:8]) > max(scores[8:]), scores
    eval_preds = [p for p in outcome.predictions if p.split == "eval"]
    assert [p.target for p in eval_preds] == ["5", "0", "5", "0"]
    assert all(p.input.startswith("Question: the ") and p.prediction in "012345" for p in eval_preds)

    task = parse_task(colours_task("named", [{"name": "verifier", "task": "judge"}], ["sft"]),
                      Limits())
    scorer = gen._scorers(task)["judge"]
    good, bad = scorer("the lemon?", "yellow"), scorer("the lemon?", "bread")
    assert 0.0 <= bad < good <= 5.0, (good, bad)  # the expected digit under the verifier
    assert scorer("the lemon?", "yellow") == good  # scored once, then remembered

    # a restarted learner scores with the verifier as it was saved, instruction included
    gen.save_adapter("judge", tmp_path / "judge")
    assert json.loads((tmp_path / "judge" / "synlearner-verifier.json").read_text())["instruction"]
    fresh = generator(tiny_causal_lm, classifier.embedder)
    fresh.load_adapter("judge", tmp_path / "judge")
    again = fresh._scorers(task)["judge"]("the lemon?", "yellow")
    assert again == pytest.approx(good, abs=1e-4)
    fresh.load_adapter("plain", tmp_path / "judge")  # a copy without the marker is no verifier
    (tmp_path / "plain").mkdir()
    for f in (tmp_path / "judge").iterdir():
        if f.name != "synlearner-verifier.json":
            (tmp_path / "plain" / f.name).write_bytes(f.read_bytes())
    fresh.load_adapter("judge", tmp_path / "plain")
    with pytest.raises(Exception, match="no verifier adapter for the verification task 'judge'"):
        fresh._scorers(task)

    # refinement: rounds until the verifier is satisfied, the best answer kept
    texts = ["the lemon?", "the sky?"]
    once = gen.refine(task, texts, None, rounds=3, threshold=0.0)
    assert [r.rounds for r in once] == [1, 1]
    assert [r.answer for r in once] == gen.predict(task, texts, None)
    never = gen.refine(task, texts, None, rounds=3, threshold=5.1)
    assert [r.rounds for r in never] == [3, 3]
    assert all(r.score == max(s for _, s in r.history) for r in never)


def test_a_preference_task_is_learned_with_dpo_on_its_pairs(  # type: ignore[no-untyped-def]
        tiny_causal_lm: Path, classifier) -> None:
    gen = generator(tiny_causal_lm, classifier.embedder,
                    preference={"steps": 30, "batch_size": 8, "lr": 5e-3, "beta": 0.1})
    task = parse_task(preference_task(), Limits())
    steps: list[tuple[str, int]] = []
    outcome = gen.learn(task, [], LearnPlan(task.task_id),
                        lambda phase, step, total, loss: steps.append((phase, step)))
    assert steps[-1] == ("preference", 30)
    assert outcome.steps == 30 and outcome.extras["preference"]["pairs"] == len(THINGS)
    assert outcome.extras["preference"]["reward_accuracy"] == 1.0  # every pair's margin moved its way
    assert outcome.final == 1.0 and outcome.final > outcome.zero_shot, outcome
    # the base model's mistakes were that it preferred the rejected answer
    base = gen._judge(task, task.eval, None, "eval")
    assert all(p.prediction == e.rejected for p, e in zip(base, task.eval, strict=True)
               if not p.correct)
    assert gen.evaluate(task, task.task_id) == 1.0


def test_the_daemon_learns_every_kind_and_checks_verifier_references(
        tiny_causal_lm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synlearner.daemon.build import build_daemon
    from synlearner.daemon.config import load_config
    from synlearner.daemon.state import State
    from synlearner.stream import SpoolPublisher
    from synlearner.stream.spool_dlq import list_dead_letters
    from tests.integration.test_generation import drain_and_scrape

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({  # YAML, written as JSON
        "state_dir": str(tmp_path / "state"), "stream": {"poll_timeout_s": 0.2},
        "learner": {"generation": {
            "model": str(tiny_causal_lm), "max_steps": 40, "lr": 5e-3,
            "self_train": {"rounds": 1, "prompts": 4, "samples": 2, "steps": 2, "search": "fixed"},
            "preference": {"steps": 6, "batch_size": 4}}}}))
    cfg = load_config(config, {"daemon.http.port": 0, "daemon.drain": True}, env={})
    verifier = [{"name": "verifier", "task": "judge", "weight": 1}, {"name": "exact_match"}]
    stream = [("judge", judge_task()),
              ("named", colours_task("named", verifier, ["sft", "self_train"])),
              ("unknown", colours_task("unknown", [{"name": "verifier", "task": "nope"}], ["sft"])),
              ("prefs", preference_task())]
    for task_id, body in stream:
        SpoolPublisher(cfg.spool_dir).submit(body, task_id)
    text = drain_and_scrape(cfg)
    state = State.read(cfg.state_dir)
    kinds = {e.task_id: e.kind for e in state.entries}
    assert kinds == {"judge": "verification", "named": "generation", "prefs": "preference"}
    named, prefs = state.latest("named"), state.latest("prefs")
    assert named is not None  # self-trained, scored by the verifier
    assert len(named.extras["self_train"]["rounds"]) == 1
    assert prefs is not None and prefs.extras["preference"]["steps"] == 6
    (dead,) = list_dead_letters(cfg.spool_dir)
    assert dead.reason == "reward.0.task: 'nope' is not a learned verification task"
    assert 'synlearner_dead_letters_total{reason="unsupported"} 1.0' in text
    # refinement at inference, scored by the task reward's verifier
    from synlearner.daemon.tools.cli import main

    capsys.readouterr()  # what the training printed
    assert main(["--config", str(config), "predict", "--task", "named", "--refine", "3",
                 "apple", "coal"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in lines] == ["apple", "coal"]
    assert all(1 <= r["rounds"] <= 3 and 0 <= r["score"] <= 5 for r in lines), lines
    assert all(r["rounds"] == 3 or r["score"] >= 4.5 for r in lines), lines
    assert main(["--config", str(config), "predict", "--task", "prefs", "--refine", "2",
                 "apple"]) == 2  # not a generation task
    parts = build_daemon(cfg)  # restarted: the verifier is a verifier again
    try:
        learners = parts.daemon.learners
        gen = learners["generation"]
        assert learners["verification"] is gen and learners["preference"] is gen
        assert "judge" in gen._verifiers  # type: ignore[attr-defined]  # the generator's own
    finally:
        parts.close()
