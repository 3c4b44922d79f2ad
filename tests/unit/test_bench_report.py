"""The bench summary: metrics per strategy, sample efficiency, targets, the written report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synlearner.bench.compare import BenchSettings, steps_to_reach, summarise
from synlearner.bench.compare_report import efficiency, render_text, targets, write_bench_report
from synlearner.memory import ExperienceMemory, HashingEmbedder, TaskInfo


def entry(task_id: str, final: float, curve: list[list[float]], probe: Any = None) -> dict[str, Any]:
    return {"task_id": task_id, "column": task_id, "zero_shot": 0.5, "initial": 0.5,
            "final": final, "init_from": None, "probe": probe, "curve": curve, "steps": 8,
            "adapter_key": task_id}


def run(name: str, adapters: str, matrix: list[list[float | None]],
        agnostic: list[list[float | None]], entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"strategy": name, "overrides": {}, "adapters": adapters, "seconds": 10.0,
            "peak_rss_mib": 900.0,
            "state": {"entries": entries, "matrix": matrix, "agnostic": agnostic}}


def fixture_runs() -> list[dict[str, Any]]:
    probe = {"candidate": "a", "steps": 4, "holdout": 4, "fresh": 0.5, "transferred": 0.75,
             "fresh_loss": 0.7, "transferred_loss": 0.4, "alone": 0.5, "alone_loss": 0.6,
             "chosen": "a", "replay": True}
    per_task = run("per-task", "per-task", [[0.8, 0.5], [0.8, 0.9]], [[0.8, 0.5], [0.8, 0.7]],
                   [entry("a", 0.8, [[0, 0.5], [4, 0.7], [8, 0.8]]),
                    entry("b", 0.9, [[0, 0.5], [4, 0.6], [8, 0.9]])])
    seq = run("seq-lora", "shared", [[0.8, 0.6], [0.6, 0.9]], [[0.8, 0.6], [0.6, 0.9]],
              [entry("a", 0.8, [[0, 0.5], [4, 0.8], [8, 0.8]]),
               entry("b", 0.9, [[0, 0.6], [4, 0.7], [8, 0.9]])])
    joint = run("multitask", "joint", [[0.9, 0.9], [0.9, 0.9]], [[0.9, 0.9], [0.9, 0.9]],
                [entry("a", 0.9, []), entry("b", 0.9, [])])
    alone = {**probe, "candidate": None, "transferred": None, "transferred_loss": None,
             "chosen": None, "replay": False}
    syn = run("synlearner", "per-task", [[0.8, 0.7], [0.8, 1.0]], [[0.8, 0.7], [0.79, 0.95]],
              [entry("a", 0.8, [[0, 0.5], [4, 0.8], [8, 0.8]], alone),
               entry("b", 1.0, [[0, 0.7], [4, 0.9], [8, 1.0]], probe)])
    syn["similarity"] = {"tasks": ["a", "b"], "matrix": [[1.0, 0.7], [0.7, 1.0]]}
    return [seq, per_task, joint, syn]


def test_steps_to_reach_is_the_first_step_at_or_over_the_target() -> None:
    curve = [[0, 0.5], [4, 0.75], [8, 0.9]]
    assert steps_to_reach(curve, 0.75) == 4
    assert steps_to_reach(curve, 0.5) == 0
    assert steps_to_reach(curve, 0.95) is None
    assert steps_to_reach([], 0.1) is None


def test_summary_metrics_efficiency_and_targets() -> None:
    summary = summarise(fixture_runs(), BenchSettings(steps=8, curve_every=4))
    by = {r["strategy"]: r for r in summary["strategies"]}
    seq = by["seq-lora"]["task_aware"]
    assert seq["acc"] == pytest.approx(0.75) and seq["bwt"] == pytest.approx(-0.2)
    assert seq["forgetting"] == pytest.approx(0.2)
    assert seq["fwt"] == pytest.approx(0.1)  # R[0][1] 0.6 - zero-shot 0.5
    syn = by["synlearner"]
    assert syn["task_aware"]["fwt"] == pytest.approx(0.2)
    assert syn["task_agnostic"]["bwt"] == pytest.approx(-0.01)
    assert by["multitask"]["task_aware"]["bwt"] is None  # not streaming: n/a
    assert by["multitask"]["task_aware"]["acc"] == pytest.approx(0.9)
    # targets come from per-task's finals (a 0.8, b 0.9)
    assert syn["steps_to_per_task_final"] == {"a": 4, "b": 4}
    assert by["per-task"]["steps_to_per_task_final"] == {"a": 8, "b": 8}
    assert efficiency(by["seq-lora"]) == {"reached": 2, "tasks": 2, "median_steps": 6.0,
                                          "mean_steps": 6.0}
    assert efficiency(by["multitask"])["reached"] is None
    assert by["synlearner"]["seconds_per_task"] == 5.0
    checks = {name: (ok, numbers) for name, ok, numbers in targets(summary)}
    assert checks["ACC >= per-task"][0] and checks["FWT > 0 and > per-task"][0]
    assert checks["ACC within 2 points of multitask"] == (True, "0.900 vs 0.900 (+0.0 points)")
    assert checks["task-agnostic BWT >= -0.01"][0]  # -0.01 exactly
    assert checks["no task ends below per-task's"] == (True, "0 of 2 below")
    assert checks["seq-lora forgets clearly (forgetting >= 0.05)"][0]


def test_a_missed_target_is_reported_not_hidden() -> None:
    runs = fixture_runs()
    runs[3]["state"]["matrix"] = [[0.8, 0.7], [0.5, 0.8]]  # synlearner forgets task a
    checks = {name: ok for name, ok, _ in targets(summarise(runs, BenchSettings(steps=8)))}
    assert not checks["ACC >= per-task"] and not checks["ACC within 2 points of multitask"]
    assert not checks["no task ends below per-task's"]  # a: 0.5 at the end vs 0.8 alone


def test_report_text_json_and_plots(tmp_path: Path) -> None:
    summary = summarise(fixture_runs(), BenchSettings(steps=8, curve_every=4))
    text = render_text(summary)
    assert "synlearner bench: 2 tasks, 8 steps per task" in text
    assert "transfer gain (synlearner)" in text and "+0.250" in text
    assert "replay dropped (worse than the task alone on held-out data): a" in text
    assert "[met] ACC >= per-task: 0.900 vs 0.850" in text
    lines = [line for line in text.splitlines() if line.startswith("multitask")]
    assert "n/a" in lines[0]
    assert summary["similarity"]["nearest_earlier"] == {"b": ("a", 0.7)}
    assert "nearest earlier task of b: a (0.700)" in text
    paths = write_bench_report(summary, tmp_path)
    body = json.loads(paths["json"].read_text())
    assert [s["strategy"] for s in body["strategies"]] == [
        "seq-lora", "per-task", "multitask", "synlearner"]
    assert all(t["met"] for t in body["targets"])
    assert body["similarity"]["matrix"] == [[1.0, 0.7], [0.7, 1.0]]
    for key in ("matrices_png", "time_png"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_start_used_says_why_a_candidate_start_was_not_used() -> None:
    runs = fixture_runs()
    probe = runs[3]["state"]["entries"][1]["probe"]
    # the copy did worse than fresh: negative transfer
    runs[3]["state"]["entries"][1]["probe"] = {**probe, "transferred": 0.5, "transferred_loss": 0.9,
                                               "chosen": None}
    assert "+0.000  fresh (negative transfer)" in render_text(summarise(runs, BenchSettings(steps=8)))
    # the copy did better than fresh, but with its replay worse than the task alone
    runs[3]["state"]["entries"][1]["probe"] = {**probe, "chosen": None, "replay": False}
    text = render_text(summarise(runs, BenchSettings(steps=8)))
    assert "+0.250  fresh, no replay (the copy with replay did worse than the task alone)" in text
    assert "negative transfer" not in text


def test_route_sends_each_vector_to_the_nearest_task_centroid(tmp_path: Path) -> None:
    emb = HashingEmbedder(256)
    mem = ExperienceMemory(tmp_path, emb)
    assert mem.route(["anything"]) == [None]
    food = ["tasty pasta sauce", "cold soup again", "lovely dessert wine"]
    sport = ["striker scores goal", "coach loses match", "league final tonight"]
    mem.register_task(TaskInfo("food", "classification", "", ("p", "n"), 3), food)
    mem.register_task(TaskInfo("sport", "classification", "", ("s", "t"), 3), sport)
    routes = mem.route(["pasta sauce tasty", "goal striker match", "dessert wine"])
    assert routes == ["food", "sport", "food"]
    assert mem.route([]) == []
    mem.close()


def test_generation_runs_report_what_they_sampled() -> None:
    rounds = [{"round": 1.0, "samples": 100.0, "pass_at_k": 0.5, "balance": 0.25},
              {"round": 2.0, "samples": 60.0, "pass_at_k": 0.75, "balance": 0.5}]
    pref = {"candidates": 40.0, "pairs": 30.0, "pairs_own": 10.0, "pairs_neighbour": 5.0,
            "pairs_candidate": 15.0, "pairs_template": 0.0, "skipped_gap": 3.0, "steps": 6.0}
    a = {**entry("a", 0.5, []), "extras": {"self_train": {"rounds": rounds}}}
    b = {**entry("b", 0.25, []), "extras": {"preference": pref}}
    gen = run("synlearner", "per-task", [[0.5, 0.0], [0.5, 0.25]], [[None], [None, None]], [a, b])
    plain = run("sft", "per-task", [[0.25, 0.0], [0.25, 0.125]], [],
                [entry("a", 0.25, []), entry("b", 0.125, [])])
    summary = summarise([plain, gen], BenchSettings(steps=8, kind="generation"))
    by = {s["strategy"]: s for s in summary["strategies"]}
    g = by["synlearner"]
    assert g["samples_generated"] == 100 + 60 + 40
    assert g["pass_at_k"] == pytest.approx(0.625)
    assert g["balance_by_round"] == [["a", 1, 0.25], ["a", 2, 0.5]]
    assert g["preference_pairs"]["pairs_own"] == 10 and g["preference_pairs"]["pairs"] == 30
    assert "samples_generated" not in by["sft"]
    assert g["task_agnostic"] == {}  # not scored: rows of None
    assert by["synlearner"]["task_aware"]["acc"] == pytest.approx(0.375)
    text = render_text(summary)
    assert "final exact match per task" in text and "0.125" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("synlearner") and "200" in x)
    assert line.split()[1:4] == ["200", "0.625", "30"]


def test_synthesis_runs_compare_the_few_shot_tasks_and_what_they_were_given(tmp_path: Path) -> None:
    """`task_aware.acc` of a synthesis stream is the accuracy of the tasks that ask for
    synthetic data; few-shot learns them alone (a shorter stream), the others after the
    synthesis task that writes for them."""
    import json as _json

    from synlearner.bench.compare import strategy_messages

    writer = {**entry("w", 0.5, []), "kind": "synthesis", "extras": {
        "grpo": {"samples": 32.0, "sample_agreement": 0.25, "reward_mean": 0.6},
        "synthesis": {"eval_pairwise_distance": 0.4, "eval_distinct_2": 0.7}}}
    asked = {**entry("c", 0.7, []), "kind": "classification", "extras": {"synthesis": {
        "generated": 8.0, "confident": 6.0, "kept": 5.0, "kept_agreement": 0.8}}}
    hro = run("synthesis-hro", "per-task", [[0.5, 0.0], [0.5, 0.75]], [], [writer, asked])
    hro["synthetic"] = {"c": {"pairwise_distance": 0.3, "distinct_2": 0.9}}
    few = run("few-shot", "per-task", [[0.625]], [], [{**entry("c", 0.625, []),
                                                      "kind": "classification"}])
    summary = summarise([few, hro], BenchSettings(steps=8, kind="synthesis"))
    by = {s["strategy"]: s for s in summary["strategies"]}
    assert by["few-shot"]["task_aware"]["acc"] == pytest.approx(0.625)
    assert by["synthesis-hro"]["task_aware"]["acc"] == pytest.approx(0.75)  # c only, last row
    (c,) = by["synthesis-hro"]["classification"]
    assert (c["kept"], c["kept_agreement"], c["kept_distinct_2"]) == (5.0, 0.8, 0.9)
    assert by["synthesis-hro"]["writers"][0]["sample_agreement"] == 0.25
    text = render_text(summary)
    line = next(x for x in text.splitlines() if x.strip().startswith("synthesis-hro  ")
                and " c " in x)
    assert line.split()[2:7] == ["0.750", "8", "6", "5", "0.800"]
    write_bench_report(summary, tmp_path)  # plots of runs with different numbers of tasks
    stream = [_json.dumps({"task_id": "w", "kind": "synthesis"}).encode(),
              _json.dumps({"task_id": "c", "kind": "classification",
                           "synthesize": {"count": 8}}).encode()]
    settings = BenchSettings(kind="synthesis")
    assert [_json.loads(m) for m in strategy_messages("few-shot", settings, stream)] == [
        {"task_id": "c", "kind": "classification"}]
    assert strategy_messages("synthesis-hro", settings, stream) == stream
