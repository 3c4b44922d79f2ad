from __future__ import annotations

import json
from pathlib import Path

import pytest

from synlearner.stream import InvalidTask, Limits, parse_task
from tests.conftest import message, raw


def reason(data: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(InvalidTask) as info:
        parse_task(data, limits or Limits())
    return info.value.reason


def test_valid_message_becomes_a_frozen_task() -> None:
    task = parse_task(raw(), Limits())
    assert task.task_id == "t1" and task.labels == ("positive", "negative")
    assert task.train[0].input == "great food" and len(task.eval) == 1
    assert len(task.content_hash) == 16
    assert parse_task(raw(), Limits()).content_hash == task.content_hash
    other = parse_task(raw(instruction="changed"), Limits())
    assert other.content_hash != task.content_hash
    with pytest.raises(AttributeError):
        task.task_id = "x"  # type: ignore[misc]  # frozen on purpose


@pytest.mark.parametrize(
    "bad_id", ["../etc", "a/b", "..", ".", ".hidden", "", "x" * 129, "a b", "é", "a\\b", "/abs"]
)
def test_task_id_that_could_escape_is_rejected(bad_id: str) -> None:
    assert reason(raw(bad_id)).startswith("task_id:")


def test_task_id_limits_accept_plain_names() -> None:
    assert parse_task(raw("x" * 128), Limits()).task_id == "x" * 128
    assert parse_task(raw("reviews-v2.1_en"), Limits()).task_id == "reviews-v2.1_en"


def test_unknown_field_and_wrong_schema() -> None:
    assert "extra" in reason(raw(surprise=1)).lower() or "surprise" in reason(raw(surprise=1))
    assert "schema" in reason(raw(schema="synlearner.task/v0"))
    assert "not valid JSON" in reason(b"{nope")
    assert "JSON object" in reason(b"[1, 2]")


def test_each_limit_names_the_field_and_the_limit() -> None:
    lim = Limits(max_message_bytes=10_000, max_train_examples=3, max_eval_examples=1,
                 max_field_chars=20, max_labels=3, on_oversize="reject")
    assert "max_message_bytes=100" in reason(raw(), Limits(max_message_bytes=100))
    many = [{"input": f"x{i}", "output": "positive"} for i in range(4)]
    assert reason(raw(train=many), lim).startswith("train: 4 examples exceeds max_train_examples=3")
    assert "max_eval_examples=1" in reason(raw(eval=many[:2]), lim)
    long = [{"input": "y" * 21, "output": "positive"}]
    short = {"instruction": "Which?"}
    assert reason(raw(train=long, **short), lim) == (
        "train[0].input: 21 chars exceeds max_field_chars=20")
    assert reason(raw(instruction="z" * 25), lim) == (
        "instruction: 25 chars exceeds max_field_chars=20")
    assert "max_labels=3" in reason(raw(labels=["a", "b", "c", "d"]), lim)


def test_labels_and_outputs_must_agree() -> None:
    assert "not one of labels" in reason(raw(train=[{"input": "x", "output": "meh"}]))
    assert "at least 2 labels" in reason(raw(labels=["only"]))
    assert "unique" in reason(raw(labels=["a", "a"]))
    assert "train" in reason(raw(train=[]))
    gen = message(kind="generation", labels=[], train=[{"input": "2+2", "output": "4"}],
                  eval=[{"input": "1+1", "output": "2"}])
    assert parse_task(json.dumps(gen).encode(), Limits()).kind == "generation"


def test_generation_tasks_declare_a_reward_and_methods() -> None:
    gen = message(kind="generation", labels=[], train=[{"input": "2+2", "output": "4"}],
                  eval=[{"input": "1+1", "output": "2"}])
    plain = parse_task(json.dumps(gen).encode(), Limits())
    assert plain.reward is None and plain.methods == ()
    assert "reward" not in plain.to_message()  # tasks without one keep their content hash
    spec = [{"name": "numeric", "weight": 2}, "exact_match"]
    task = parse_task(json.dumps({**gen, "reward": spec, "methods": ["sft", "self_train"]}).encode(),
                      Limits())
    assert task.reward == spec and task.methods == ("sft", "self_train")
    assert task.content_hash != plain.content_hash
    again = parse_task(json.dumps(task.to_message()).encode(), Limits())
    assert (again.reward, again.methods, again.content_hash) == (spec, task.methods,
                                                                 task.content_hash)
    old = parse_task(json.dumps({**gen, "reward": spec, "phases": ["sft", "self_train"]}).encode(),
                     Limits())  # the old name of the field is still read
    assert (old.methods, old.content_hash) == (task.methods, task.content_hash)
    assert reason(raw(reward="exact_match")) == "reward: only generation tasks take reward"
    assert reason(json.dumps({**gen, "methods": ["sft", "sft"]}).encode()) == (
        "methods: a method may appear once")
    assert reason(json.dumps({**gen, "methods": ["sft"], "phases": ["sft"]}).encode()) == (
        "phases: the old name of methods; give methods only")
    assert reason(json.dumps({**gen, "methods": ["Dance!"]}).encode()).startswith("methods.0:")
    assert reason(json.dumps({**gen, "methods": []}).encode()).startswith("methods:")
    assert reason(json.dumps({**gen, "reward": 3}).encode()).startswith("reward")


def test_preference_and_verification_examples_carry_their_extra_field() -> None:
    pref = message(kind="preference", labels=[],
                   train=[{"input": "2+2?", "output": "4", "rejected": "5"}],
                   eval=[{"input": "1+1?", "output": "2", "rejected": "11"}])
    task = parse_task(json.dumps(pref).encode(), Limits())
    assert task.kind == "preference" and task.train[0].rejected == "5"
    again = parse_task(json.dumps(task.to_message()).encode(), Limits())
    assert again.train == task.train and again.content_hash == task.content_hash
    missing = {**pref, "eval": [{"input": "1+1?", "output": "2"}]}
    assert reason(json.dumps(missing).encode()) == (
        "eval[0].rejected: a preference example needs the rejected answer")
    same = {**pref, "train": [{"input": "2+2?", "output": "4", "rejected": "4"}]}
    assert reason(json.dumps(same).encode()) == "train[0].rejected: equals the chosen output"
    assert reason(json.dumps({**pref, "reward": "exact_match"}).encode()) == (
        "reward: only generation tasks take reward")

    ver = message(kind="verification", labels=[],
                  train=[{"input": "2+2?", "output": "4", "score": 5},
                         {"input": "2+2?", "output": "5", "score": 0}],
                  eval=[{"input": "1+1?", "output": "2", "score": 4.5}])
    judged = parse_task(json.dumps(ver).encode(), Limits())
    assert [e.score for e in judged.train] == [5.0, 0.0] and judged.eval[0].score == 4.5
    assert parse_task(json.dumps(judged.to_message()).encode(), Limits()) == judged
    assert reason(json.dumps({**ver, "eval": [{"input": "1+1?", "output": "2"}]}).encode()) == (
        "eval[0].score: a verification example needs a score from 0 to 5")
    for bad in (6, True, "5"):  # in range, and a number (as data files have it)
        assert reason(json.dumps({**ver, "eval": [{"input": "q", "output": "a", "score": bad}]})
                      .encode()).startswith("eval.0.score:"), bad
    # the extra fields belong to their kinds only
    assert reason(raw(train=[{"input": "great food", "output": "positive", "score": 3},
                             {"input": "awful service", "output": "negative"}])) == (
        "train[0].score: only verification tasks take scores")
    gen = message(kind="generation", labels=[], train=[{"input": "q", "output": "a", "rejected": "b"}],
                  eval=[{"input": "q", "output": "a"}])
    assert reason(json.dumps(gen).encode()) == (
        "train[0].rejected: only preference tasks take rejected answers")


def test_a_long_rejected_answer_is_cut_like_any_field() -> None:
    pref = message(kind="preference", labels=[], instruction="Answer.",
                   train=[{"input": "q", "output": "a", "rejected": "b" * 50}],
                   eval=[{"input": "q", "output": "a", "rejected": "c"}])
    task = parse_task(json.dumps(pref).encode(), Limits(max_field_chars=10))
    assert task.train[0].rejected == "b" * 10 and task.truncated == {"train.rejected": 1}
    assert reason(json.dumps(pref).encode(), Limits(max_field_chars=10, on_oversize="reject")) == (
        "train[0].rejected: 50 chars exceeds max_field_chars=10")


def test_data_files_only_under_allowed_roots(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    rows = [{"input": "nice", "output": "positive"}, {"input": "bad", "output": "negative"}]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "secret.jsonl").write_text(json.dumps(rows[0]))
    lim = Limits(allowed_data_roots=(root,))
    task = parse_task(raw(train=[], data={"train": "train.jsonl"}), lim)
    assert [e.input for e in task.train] == ["nice", "bad"]
    task = parse_task(raw(train=[], data={"train": f"file://{root / 'train.jsonl'}"}), lim)
    assert len(task.train) == 2
    assert "outside the allowed data roots" in reason(
        raw(train=[], data={"train": "../secret.jsonl"}), lim)
    assert "outside" in reason(raw(train=[], data={"train": str(tmp_path / "secret.jsonl")}), lim)
    assert "disabled" in reason(raw(train=[], data={"train": "train.jsonl"}))
    assert "only local paths" in reason(raw(train=[], data={"train": "s3://b/k"}), lim)


def test_parquet_data(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"input": ["good", "bad"], "output": ["positive", "negative"]})
    pq.write_table(table, tmp_path / "eval.parquet")
    task = parse_task(raw(eval=[], data={"eval": "eval.parquet"}),
                      Limits(allowed_data_roots=(tmp_path,)))
    assert [e.output for e in task.eval] == ["positive", "negative"]


def test_synthesis_tasks_take_labelled_texts_and_a_request() -> None:
    syn = message(kind="synthesis", labels=["pos", "neg"],
                  train=[{"input": "a fine day out", "output": "pos"}],
                  eval=[{"input": "a dull film", "output": "neg"}])
    plain = parse_task(json.dumps(syn).encode(), Limits())
    assert plain.synthesis == {"descriptions": {}, "attributes": {}, "count": 32, "shots": 2,
                               "judge": None}  # absent: the defaults, kept in the task
    spec = {"descriptions": {"pos": "glad"}, "attributes": {"length": ["short", "long"]},
            "count": 8, "shots": 1, "judge": "reviews"}
    task = parse_task(json.dumps({**syn, "synthesis": spec, "methods": ["grpo"]}).encode(),
                      Limits())
    assert task.synthesis == spec and task.methods == ("grpo",)
    again = parse_task(json.dumps(task.to_message()).encode(), Limits())
    assert (again.synthesis, again.content_hash) == (spec, task.content_hash)
    assert reason(json.dumps({**syn, "labels": ["pos"]}).encode()) == (
        "labels: a synthesis task needs at least 2 labels")
    assert "not one of labels" in reason(json.dumps(
        {**syn, "train": [{"input": "x", "output": "meh"}]}).encode())
    assert reason(json.dumps({**syn, "synthesis": {"descriptions": {"meh": "x"}}}).encode()) == (
        "synthesis.descriptions: 'meh' is not one of labels")
    assert reason(raw(synthesis={"count": 4})) == "synthesis: only synthesis tasks take synthesis"
    assert reason(json.dumps({**syn, "synthesis": {"count": 0}}).encode()).startswith(
        "synthesis.count:")
    assert reason(json.dumps({**syn, "synthesis": {"judge": "../x"}}).encode()).startswith(
        "synthesis.judge:")
    lim = Limits(max_field_chars=20)
    long = {**syn, "synthesis": {"attributes": {"tone": ["calm", "z" * 25]}}}
    assert reason(json.dumps(long).encode(), lim) == (
        "synthesis.attributes.tone[1]: 25 chars exceeds max_field_chars=20")


def test_a_classification_task_may_ask_for_synthetic_data() -> None:
    plain = parse_task(raw(), Limits())
    assert plain.synthesize is None and "synthesize" not in plain.to_message()
    task = parse_task(raw(synthesize={"count": 40, "from": "write-reviews"}), Limits())
    assert task.synthesize == {"count": 40, "from": "write-reviews"}
    assert task.content_hash != plain.content_hash
    again = parse_task(json.dumps(task.to_message()).encode(), Limits())
    assert (again.synthesize, again.content_hash) == (task.synthesize, task.content_hash)
    assert parse_task(raw(synthesize={"count": 8}), Limits()).synthesize == {
        "count": 8, "from": "nearest"}
    assert reason(raw(synthesize={"count": 0})).startswith("synthesize.count:")
    assert reason(raw(synthesize={"count": 4, "from": "../x"})).startswith("synthesize.from:")
    gen = message(kind="generation", labels=[], train=[{"input": "2+2", "output": "4"}],
                  eval=[{"input": "1+1", "output": "2"}], synthesize={"count": 4})
    assert reason(json.dumps(gen).encode()) == (
        "synthesize: only classification tasks take synthesize")
