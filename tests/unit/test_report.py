"""The daemon's report: self-training rounds in the text, the JSON and a plot; synthesis."""

from __future__ import annotations

import json
from pathlib import Path

from synlearner.daemon.state import State, TaskEntry
from synlearner.daemon.tools.report import write_report


def test_self_training_rounds_are_reported_and_plotted(tmp_path: Path) -> None:
    state = State.load(tmp_path / "state")
    rounds = [{"round": float(i), "temperature": t, "tau": 0.5, "balance": b, "pass_at_1": 0.3,
               "pass_at_k": 0.6, "unique_correct": 0.8, "precision": 0.9, "kept": 40.0,
               "samples": 200.0, "search_samples": 72.0, "grid_samples": 7680.0, "steps": 20.0,
               "loss": 0.4, "eval_accuracy": acc, "past_successes": past}
              for i, t, b, acc, past in ((1, 0.85, 0.41, 0.30, 16.0), (2, 1.05, 0.55, 0.45, 7.0))]
    for task_id, done in (("sums", rounds), ("plain", [])):
        state.record(TaskEntry(task_id, task_id, 1, "h", "generation", f"adapters/{task_id}/1",
                               0.1, 0.1, 0.45, None, 40, 8, 0,
                               extras={"self_train": {"rounds": done}} if done else {}),
                     {"sums": 0.45, "plain": 0.45})
    paths = write_report(state, tmp_path / "report")
    text = paths["text"].read_text()
    assert "self-training rounds" in text
    table = text.split("self-training rounds")[1].splitlines()
    lines = [line for line in table if line.startswith("sums ")]
    assert len(lines) == 2 and " 1.05 " in lines[1] and lines[1].rstrip().endswith("0.450")
    assert lines[0].split()[8:10] == ["16", "200"] and lines[1].split()[8] == "7"  # past, samples
    assert not any(line.startswith("plain ") for line in table)
    body = json.loads(paths["json"].read_text())
    assert [t["extras"] for t in body["tasks"]] == [{"self_train": {"rounds": rounds}}, {}]
    assert paths["self_training_png"].stat().st_size > 1000


def test_synthesis_tasks_and_the_synthetic_data_asked_for_are_reported(tmp_path: Path) -> None:
    state = State.load(tmp_path / "state")
    grpo = {"samples": 128.0, "sample_agreement": 0.625, "reward_mean": 0.71,
            "reward_first_half": 0.66, "reward_second_half": 0.76}
    writer = {"eval_pairwise_distance": 0.42, "eval_distinct_2": 0.8}
    asked = {"generated": 48.0, "confident": 30.0, "kept": 27.0, "kept_agreement": 0.926}
    state.record(TaskEntry("write", "write", 1, "h", "synthesis", "adapters/write/1", 0.2, 0.2,
                           0.55, None, 40, 24, 0, extras={"grpo": grpo, "synthesis": writer}),
                 {"write": 0.55})
    state.record(TaskEntry("few", "few", 1, "h", "classification", "adapters/few/2", 0.4, 0.4,
                           0.8, None, 24, 51, 0, extras={"synthesis": asked}),
                 {"write": 0.55, "few": 0.8})
    text = write_report(state, tmp_path / "report")["text"].read_text()
    (w,) = [x for x in text.split("synthesis tasks")[1].splitlines() if x.startswith("write ")]
    assert w.split()[1:] == ["0.550", "0.420", "0.800"]
    (g,) = [x for x in text.split("reward-optimised synthesis")[1].split("\n\n")[0].splitlines()
            if x.startswith("write ")]
    assert g.split()[1:] == ["128", "0.625", "0.710", "0.660", "0.760"]
    (f,) = [x for x in text.split("synthetic training data")[1].splitlines()
            if x.startswith("few ")]
    assert f.split()[1:] == ["48", "30", "27", "0.926"]


def test_entries_stored_before_extras_are_read_with_their_figures_moved_there() -> None:
    from synlearner.daemon.state import TaskEntry

    body = {"task_id": "t", "column": "t", "version": 1, "content_hash": "h",
            "kind": "generation", "adapter": "adapters/t/000001", "zero_shot": 0.0,
            "initial": 0.0, "final": 0.5, "init_from": None, "steps": 4,
            "train_examples": 8, "replay_examples": 0, "rounds": [{"round": 1.0}],
            "preference": {"pairs": 3.0}, "synthesis": {"generated": 2.0}}
    entry = TaskEntry.of(body)
    assert entry.extras == {"self_train": {"rounds": [{"round": 1.0}]},
                            "preference": {"pairs": 3.0}, "synthesis": {"generated": 2.0}}
