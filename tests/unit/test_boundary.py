"""The message boundary: whatever the bytes, only a `Task` or a dead letter with a reason
comes out; oversized content is cut (and said so) or rejected, as configured."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synlearner.stream import InvalidTask, Limits, Task
from synlearner.stream.boundary import decode, describe, is_transient
from synlearner.stream.errors import DEAD_LETTER_CODES, SourceUnavailable
from synlearner.stream.safejson import loads_bounded
from tests.conftest import message, raw

LIMITS = Limits()
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(data: bytes, limits: Limits = LIMITS) -> Task | InvalidTask:
    """What the boundary makes of `data`: it must never raise anything else."""
    try:
        task = decode(data, limits)
    except InvalidTask as exc:
        assert exc.reason and exc.code in DEAD_LETTER_CODES
        assert exc.code != "internal", exc.reason  # every failure mode is known, none wrapped
        return exc
    assert isinstance(task, Task) and task.train and task.eval
    return task


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=30,
)
FIELDS = ["schema", "task_id", "kind", "instruction", "labels", "train", "eval", "data",
          "metadata", "surprise"]


@FAST
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data: bytes) -> None:
    outcome(data)


@FAST
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    outcome(json.dumps(value).encode())


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
       st.lists(st.sampled_from(FIELDS), max_size=3))
def test_valid_messages_with_fields_replaced_or_removed(changes: dict[str, Any],
                                                         removed: list[str]) -> None:
    body = {**message(), **changes}
    for name in removed:
        body.pop(name, None)
    outcome(json.dumps(body).encode())


@FAST
@given(st.data())
def test_byte_mutations_of_a_valid_message(data: st.DataObject) -> None:
    buf = bytearray(raw())
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, len(buf) - 1)) if buf else 0
        if op == "flip" and buf:
            buf[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and buf:
            del buf[at:at + data.draw(st.integers(1, 8))]
        else:
            del buf[at:]
    outcome(bytes(buf))


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deep_nesting_is_refused_before_parsing(depth: int) -> None:
    for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
        exc = outcome(opener * depth + b"1" + closer * depth)
        assert isinstance(exc, InvalidTask)
        assert f"nesting depth {depth} exceeds max_json_depth=32" in exc.reason


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '[' * 40 + ']' * 40 + '"\\"' + '[' * 100
    task = outcome(raw(instruction=text))
    assert isinstance(task, Task) and task.instruction == text


def test_huge_numbers_and_constants_are_refused() -> None:
    huge = outcome(b'{"task_id": ' + b"9" * 100_000 + b"}")
    assert isinstance(huge, InvalidTask)
    assert "a number of 100000 characters exceeds max_number_chars=64" in huge.reason
    assert "NaN is not valid JSON" in str(outcome(b'{"a": NaN}'))
    assert "not valid UTF-8 (byte 1)" in str(outcome(b'{\xff}'))
    with pytest.raises(InvalidTask, match="max_json_depth=4"):
        loads_bounded(b"[[[[[1]]]]]", "x", 4, 10)


def test_transient_failures_are_told_apart_from_bad_messages() -> None:
    assert is_transient(OSError(28, "No space left on device"))
    assert is_transient(OSError(24, "Too many open files"))
    assert is_transient(SourceUnavailable("broker down"))
    assert not is_transient(OSError(2, "No such file or directory"))
    assert not is_transient(ValueError("bad"))
    assert describe(ValueError("a\nb " * 200)).startswith("ValueError: a b a b")
    assert len(describe(ValueError("x" * 10_000))) < 320


# -- oversize policy -----------------------------------------------------------------------
def reviews(n_pos: int, n_neg: int, n_mid: int = 0) -> list[dict[str, str]]:
    rows = [{"input": f"good {i}", "output": "positive"} for i in range(n_pos)]
    rows += [{"input": f"bad {i}", "output": "negative"} for i in range(n_neg)]
    rows += [{"input": f"so-so {i}", "output": "mixed"} for i in range(n_mid)]
    return rows


def test_long_fields_are_cut_and_counted() -> None:
    long = "x" * 5000
    train = [{"input": long, "output": "positive"}, {"input": "bad", "output": "negative"}]
    task = decode(raw(train=train, instruction="i" * 4001), LIMITS)
    assert len(task.train[0].input) == 4000 and task.train[0].input == long[:4000]
    assert task.instruction == "i" * 4000
    assert dict(task.truncated) == {"train.input": 1, "instruction": 1}
    with pytest.raises(InvalidTask, match=r"train\[0\].input: 5000 chars exceeds max_field_chars=4000"):
        decode(raw(train=train), Limits(on_oversize="reject"))


def test_oversized_splits_are_sampled_down_stratified_and_deterministically() -> None:
    labels = ["positive", "negative", "mixed"]
    body = raw(labels=labels, train=reviews(600, 300, 100))
    lim = Limits(max_train_examples=100)
    task = decode(body, lim)
    counts = Counter(e.output for e in task.train)
    assert counts == {"positive": 60, "negative": 30, "mixed": 10}
    assert dict(task.truncated) == {"train_examples": 900}
    assert decode(body, lim).train == task.train  # the same message gives the same sample
    inputs = [e.input for e in task.train]
    original = [r["input"] for r in reviews(600, 300, 100)]
    assert inputs == sorted(inputs, key=original.index)  # in the order they came
    other_seed = decode(body, Limits(max_train_examples=100, sample_seed=1))
    assert other_seed.train != task.train


def test_every_label_keeps_an_example_when_sampled_down() -> None:
    labels = ["positive", "negative", "mixed"]
    task = decode(raw(labels=labels, train=reviews(500, 498, 2)), Limits(max_train_examples=10))
    counts = Counter(e.output for e in task.train)
    assert sum(counts.values()) == 10 and counts["mixed"] >= 1


def test_structural_problems_are_rejected_whatever_the_policy() -> None:
    for bad, needle in [
        (raw("../x"), "task_id"),
        (raw(train=[{"input": "a", "output": "neutral"}]), "is not one of labels"),
        (raw(labels=["a" * 4001, "b"], train=[{"input": "a", "output": "b"}]), "labels[0]"),
        (b"[1]", "expected a JSON object"),
    ]:
        exc = outcome(bad)
        assert isinstance(exc, InvalidTask) and needle in exc.reason, exc
