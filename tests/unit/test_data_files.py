"""Data files named by a task message (`data.train` / `data.eval`) are hostile input too."""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synlearner.stream import data as data_mod
from synlearner.stream.boundary import decode
from synlearner.stream.errors import InvalidTask, SourceUnavailable
from synlearner.stream.schema import Limits, Task
from tests.conftest import raw

ROWS = [{"input": "nice", "output": "positive"}, {"input": "bad", "output": "negative"},
        {"input": "fine", "output": "positive"}]


def train_msg(name: str) -> bytes:
    return raw(train=[], data={"train": name})


def eval_msg(name: str) -> bytes:
    return raw(eval=[], data={"eval": name})


def limits(root: Path, **over: Any) -> Limits:
    return Limits(allowed_data_roots=(root,), **over)


def invalid(message: bytes, lim: Limits) -> InvalidTask:
    with pytest.raises(InvalidTask) as info:
        decode(message, lim)
    assert info.value.code != "internal", info.value.reason
    return info.value


def jsonl(path: Path, rows: list[Any], extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + extra)
    return path


def parquet_bytes(table: pa.Table, **kw: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def rows_table(n: int) -> pa.Table:
    return pa.table({"input": [f"x{i}" for i in range(n)],
                     "output": ["positive" if i % 2 else "negative" for i in range(n)]})


# --- JSON lines: encoding, depth, numbers, line and file size --------------------------------

def test_invalid_utf8_line(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_bytes(b'{"input": "ok", "output": "positive"}\n'
                                       b'{"input": "\xff\xfe", "output": "positive"}\n')
    err = invalid(train_msg("t.jsonl"), limits(tmp_path))
    assert err.reason.startswith("data.train line 2: not valid UTF-8") and err.code == "not_json"


def test_deep_nesting_in_a_line(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "t.jsonl").write_text('{"input": "a", "output": "positive", "x": ' + deep + "}\n")
    err = invalid(train_msg("t.jsonl"), limits(tmp_path, max_data_line_bytes=1 << 20))
    assert err.reason.startswith("data.train line 1: JSON nesting depth")
    assert "max_json_depth=32" in err.reason and err.code == "limit"


def test_huge_integer_in_a_line(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"input": "a", "output": "positive", "n": 1' + "0" * 100_000 + "}")
    err = invalid(train_msg("t.jsonl"), limits(tmp_path))
    assert err.reason.startswith("data.train line 1: a number of 100001 characters")
    assert "max_number_chars=64" in err.reason and err.code == "limit"


def test_bad_json_line_names_the_line(tmp_path: Path) -> None:
    jsonl(tmp_path / "t.jsonl", ROWS, extra=b"{nope\n")
    err = invalid(train_msg("t.jsonl"), limits(tmp_path))
    assert err.reason.startswith("data.train line 4: not valid JSON") and err.code == "not_json"


def test_long_line_is_rejected_without_reading_it_whole(tmp_path: Path) -> None:
    jsonl(tmp_path / "t.jsonl", ROWS[:1], extra=b'{"input": "' + b"a" * 5000 + b'", "output": "positive"}\n')
    err = invalid(train_msg("t.jsonl"), limits(tmp_path, max_data_line_bytes=1000))
    assert err.reason == "data.train: line 2 is longer than max_data_line_bytes=1000"
    assert err.code == "limit"

    class Spy(io.BytesIO):
        biggest = 0

        def readline(self, size: int | None = -1, /) -> bytes:
            line = super().readline(size)
            Spy.biggest = max(Spy.biggest, len(line))
            return line

    with pytest.raises(InvalidTask, match="max_data_line_bytes=1048576"):
        data_mod._read_jsonl(Spy(b"[" + b" " * 50_000_000 + b"]\n"), "data.train", Limits())
    assert Spy.biggest <= (1 << 20) + 2


def test_a_line_exactly_at_the_limit_passes(tmp_path: Path) -> None:
    line = json.dumps({"input": "abc", "output": "positive"}).encode()
    (tmp_path / "t.jsonl").write_bytes(line + b"\r\n" + line)
    task = decode(train_msg("t.jsonl"), limits(tmp_path, max_data_line_bytes=len(line)))
    assert [e.input for e in task.train] == ["abc", "abc"]


def test_file_size_is_checked_before_reading(tmp_path: Path) -> None:
    with open(tmp_path / "big.jsonl", "wb") as fh:
        fh.truncate(300_000_000)  # sparse: costs no disk
    err = invalid(train_msg("big.jsonl"), limits(tmp_path))
    assert err.reason == "data.train: 300000000 bytes exceeds max_data_file_bytes=268435456"
    assert err.code == "limit"


def test_bytes_are_counted_while_reading_too() -> None:
    grown = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in ROWS * 20))
    with pytest.raises(InvalidTask) as info:
        data_mod._read_jsonl(grown, "data.eval", Limits(max_data_file_bytes=100))
    assert info.value.reason == "data.eval: more than 100 bytes read exceeds max_data_file_bytes=100"


# --- rows ------------------------------------------------------------------------------------

def test_rows_need_non_empty_string_input_and_output(tmp_path: Path) -> None:
    lim = limits(tmp_path)
    jsonl(tmp_path / "a.jsonl", [ROWS[0], [1, 2]])
    assert invalid(train_msg("a.jsonl"), lim).reason == (
        "data.train line 2: each row needs string 'input' and 'output'")
    jsonl(tmp_path / "b.jsonl", [ROWS[0], {"input": "x", "output": 3}])
    assert "line 2: each row needs string" in invalid(train_msg("b.jsonl"), lim).reason
    jsonl(tmp_path / "c.jsonl", [ROWS[0], ROWS[1], {"input": "", "output": "positive"}])
    assert invalid(train_msg("c.jsonl"), lim).reason == (
        "data.train line 3: 'input' and 'output' must not be empty")
    (tmp_path / "d.parquet").write_bytes(parquet_bytes(pa.table(
        {"input": ["a", None], "output": ["positive", "negative"]})))
    assert invalid(eval_msg("d.parquet"), lim).reason == (
        "data.eval[1]: each row needs string 'input' and 'output'")
    (tmp_path / "e.parquet").write_bytes(parquet_bytes(pa.table(
        {"input": ["a", "b"], "output": ["positive", ""]})))
    assert invalid(eval_msg("e.parquet"), lim).reason == (
        "data.eval[1]: 'input' and 'output' must not be empty")


def test_jsonl_rows_of_preference_and_verification_tasks(tmp_path: Path) -> None:
    lim = limits(tmp_path)
    pref = raw(kind="preference", labels=[], train=[], data={"train": "p.jsonl"},
               eval=[{"input": "q", "output": "a", "rejected": "b"}])
    jsonl(tmp_path / "p.jsonl", [{"input": "2+2", "output": "4", "rejected": "5"}])
    task = decode(pref, lim)
    assert task.train[0].rejected == "5"
    jsonl(tmp_path / "p.jsonl", [{"input": "2+2", "output": "4"}])
    assert invalid(pref, lim).reason == (
        "train[0].rejected: a preference example needs the rejected answer")
    jsonl(tmp_path / "p.jsonl", [{"input": "2+2", "output": "4", "rejected": 5}])
    assert invalid(pref, lim).reason == "data.train line 1.rejected: expected a string"
    ver = raw(kind="verification", labels=[], train=[], data={"train": "v.jsonl"},
              eval=[{"input": "q", "output": "a", "score": 1}])
    jsonl(tmp_path / "v.jsonl", [{"input": "2+2", "output": "4", "score": 5}])
    assert decode(ver, lim).train[0].score == 5.0
    for bad in (7, True, "5"):
        jsonl(tmp_path / "v.jsonl", [{"input": "2+2", "output": "4", "score": bad}])
        assert invalid(ver, lim).reason == (
            "data.train line 1.score: expected a number from 0 to 5"), bad


def test_truncate_mode_reads_more_rows_than_the_cap_but_not_unboundedly(tmp_path: Path) -> None:
    lim = limits(tmp_path, max_train_examples=5, max_eval_examples=5)
    rows = [{"input": f"x{i}", "output": "positive" if i % 2 else "negative"} for i in range(60)]
    jsonl(tmp_path / "ok.jsonl", rows[:25])
    task = decode(train_msg("ok.jsonl"), lim)
    assert len(task.train) == 5 and task.truncated["train_examples"] == 20
    jsonl(tmp_path / "many.jsonl", rows[:51])
    err = invalid(train_msg("many.jsonl"), lim)
    assert err.reason == "data.train: more than 50 examples exceeds 10 x max_train_examples=5"
    assert err.code == "limit"
    jsonl(tmp_path / "blank.jsonl", rows[:2], extra=b"\n" * 60)
    assert invalid(train_msg("blank.jsonl"), lim).reason == (
        "data.train: more than 50 lines exceeds 10 x max_train_examples=5")
    (tmp_path / "ok.parquet").write_bytes(parquet_bytes(rows_table(25)))
    assert len(decode(eval_msg("ok.parquet"), lim).eval) == 5
    (tmp_path / "many.parquet").write_bytes(parquet_bytes(rows_table(51)))
    assert invalid(eval_msg("many.parquet"), lim).reason == (
        "data.eval: 51 examples exceeds 10 x max_eval_examples=5")


def test_reject_mode_keeps_rejecting_over_the_cap(tmp_path: Path) -> None:
    lim = limits(tmp_path, max_train_examples=5, max_eval_examples=5, on_oversize="reject")
    rows = [{"input": f"x{i}", "output": "positive"} for i in range(6)]
    jsonl(tmp_path / "t.jsonl", rows)
    assert invalid(train_msg("t.jsonl"), lim).reason == (
        "data.train: more than 5 examples exceeds max_train_examples=5")
    jsonl(tmp_path / "five.jsonl", rows[:5])
    assert len(decode(train_msg("five.jsonl"), lim).train) == 5
    (tmp_path / "e.parquet").write_bytes(parquet_bytes(rows_table(6)))
    assert invalid(eval_msg("e.parquet"), lim).reason == (
        "data.eval: 6 examples exceeds max_eval_examples=5")


# --- Parquet ---------------------------------------------------------------------------------

def test_corrupt_parquet(tmp_path: Path) -> None:
    lim = limits(tmp_path)
    good = parquet_bytes(rows_table(4))
    for i, blob in enumerate([b"", b"PAR1 not really PAR1", good[: len(good) // 2],
                              good[:8] + b"\x00" * (len(good) - 16) + good[-8:]]):
        (tmp_path / f"{i}.parquet").write_bytes(blob)
        err = invalid(eval_msg(f"{i}.parquet"), lim)
        assert err.reason.startswith("data.eval: not a readable Parquet file"), err.reason
        assert err.code == "data_file"


def test_parquet_bomb_is_measured_before_it_is_expanded(tmp_path: Path) -> None:
    # 8,000 rows of one 1 MB string: a few KB on disk, 7.8 GiB as Python strings
    column = pa.DictionaryArray.from_arrays(pa.array([0] * 8000, pa.int32()), pa.array(["a" * (1 << 20)]))
    blob = parquet_bytes(pa.table({"input": column, "output": ["positive"] * 8000}), compression="zstd")
    assert len(blob) < 64 * 1024
    (tmp_path / "bomb.parquet").write_bytes(blob)
    err = invalid(eval_msg("bomb.parquet"), limits(tmp_path))
    assert err.reason == ("data.eval: more than 268435456 bytes of strings exceeds "
                          "max_data_file_bytes=268435456") and err.code == "limit"


def test_parquet_metadata_is_checked_first(tmp_path: Path) -> None:
    lim = limits(tmp_path, max_data_file_bytes=1_000_000)
    blob = parquet_bytes(pa.table({"input": ["a"], "output": ["positive"], "blob": ["z" * 5_000_000]}),
                         compression="zstd", use_dictionary=False)
    assert len(blob) < 1_000_000
    (tmp_path / "big.parquet").write_bytes(blob)
    err = invalid(eval_msg("big.parquet"), lim)
    assert err.reason.startswith("data.eval: ") and err.code == "limit"
    assert err.reason.endswith("bytes uncompressed exceeds max_data_file_bytes=1000000")
    (tmp_path / "rows.parquet").write_bytes(parquet_bytes(rows_table(200_000), compression="zstd"))
    assert invalid(eval_msg("rows.parquet"), lim).reason == (
        "data.eval: 200000 examples exceeds 10 x max_eval_examples=5000")
    (tmp_path / "int.parquet").write_bytes(parquet_bytes(pa.table({"input": [1], "output": ["positive"]})))
    assert invalid(eval_msg("int.parquet"), lim).reason == (
        "data.eval: column 'input' is 'int64', not a string column")
    (tmp_path / "miss.parquet").write_bytes(parquet_bytes(pa.table({"input": ["a"]})))
    assert invalid(eval_msg("miss.parquet"), lim).reason == (
        "data.eval: the Parquet file needs one column 'output'")


# --- the path --------------------------------------------------------------------------------

def test_nul_byte_in_path(tmp_path: Path) -> None:
    jsonl(tmp_path / "t.jsonl", ROWS)
    err = invalid(train_msg("t.jsonl\x00.parquet"), limits(tmp_path))
    assert err.reason == "data.train: the path contains a NUL byte" and err.code == "data_file"


def test_directory_and_fifo_are_not_regular_files(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    os.mkfifo(tmp_path / "fifo.jsonl")
    lim = limits(tmp_path)
    for name in ("dir.jsonl", "fifo.jsonl"):
        err = invalid(train_msg(name), lim)
        assert err.reason == f"data.train: {name!r} is not a regular file" and err.code == "data_file"
    # past the path check (a swap after it): the opened descriptor is checked; a FIFO never blocks
    with pytest.raises(InvalidTask, match="is not a regular file"):
        data_mod._open_inside(tmp_path / "fifo.jsonl", "data.train", lim)


def test_symlinks(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    jsonl(outside / "secret.jsonl", ROWS)
    jsonl(root / "t.jsonl", ROWS)
    lim = limits(root)
    (root / "out.jsonl").symlink_to(outside / "secret.jsonl")
    assert "outside the allowed data roots" in invalid(train_msg("out.jsonl"), lim).reason
    (root / "sub").symlink_to(outside)
    assert "outside the allowed data roots" in invalid(train_msg("sub/secret.jsonl"), lim).reason
    (root / "loop.jsonl").symlink_to(root / "loop.jsonl")
    err = invalid(train_msg("loop.jsonl"), lim)
    assert err.reason.startswith("data.train: ") and err.code == "data_file"
    (root / "gone.jsonl").symlink_to(root / "missing.jsonl")
    assert "no such file" in invalid(train_msg("gone.jsonl"), lim).reason
    (root / "in.jsonl").symlink_to(root / "t.jsonl")  # a link that stays inside is followed
    assert len(decode(train_msg("in.jsonl"), lim).train) == 3


def test_a_path_swapped_after_the_check_is_caught_at_open(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    jsonl(outside / "secret.jsonl", ROWS)
    (root / "link.jsonl").symlink_to(outside / "secret.jsonl")
    (root / "sub").symlink_to(outside)
    lim = limits(root)
    escapes = "the opened file is outside the allowed data roots"
    for swapped, why in ((root / "link.jsonl", "'link.jsonl' is a symbolic link"),
                         (root / "sub" / "secret.jsonl", escapes)):
        monkeypatch.setattr(data_mod, "resolve_data_path", lambda *_a, p=swapped: p)
        err = invalid(train_msg("t.jsonl"), lim)
        assert err.reason == f"data.train: {why}" and err.code == "data_file"


def test_existing_path_messages(tmp_path: Path) -> None:
    lim = limits(tmp_path)
    jsonl(tmp_path / "t.csv", ROWS)
    assert invalid(train_msg("t.csv"), lim).reason == (
        "data.train: unsupported file type '.csv' (use .jsonl or .parquet)")
    assert invalid(train_msg("nope.jsonl"), lim).reason.startswith("data.train: no such file 'nope.jsonl'")
    assert "outside the allowed data roots" in invalid(train_msg("/etc/passwd"), lim).reason
    assert "only local paths" in invalid(train_msg("http://x/y.jsonl"), lim).reason
    assert "data files are disabled" in invalid(train_msg("t.jsonl"), Limits()).reason


def test_machine_trouble_is_retried_not_dead_lettered(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    jsonl(tmp_path / "t.jsonl", ROWS)

    def no_fds(*_a: Any, **_k: Any) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(os, "open", no_fds)
    with pytest.raises(SourceUnavailable):
        decode(train_msg("t.jsonl"), limits(tmp_path))


# --- properties: whatever the file holds, only a Task or an InvalidTask comes out -------------

SMALL = {"max_data_line_bytes": 512, "max_data_file_bytes": 8192, "max_train_examples": 5,
         "max_eval_examples": 5, "max_json_depth": 8, "max_number_chars": 12}
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_JSONL = b"".join(json.dumps(r).encode() + b"\n" for r in ROWS * 3)


def only_task_or_invalid(name: str, blob: bytes, message: bytes, **over: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / name).write_bytes(blob)
        try:
            assert isinstance(decode(message, limits(root, **over)), Task)
        except InvalidTask as exc:
            assert exc.code != "internal", exc.reason  # an unexpected exception type, wrapped
            assert exc.reason.startswith(("data.", "train", "eval")), exc.reason


@st.composite
def mutated(draw: st.DrawFn, blob: bytes, lines: bool) -> bytes:
    out = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "dup"] if lines else
                                    ["truncate", "flip", "insert"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "truncate":
            del out[at:]
        elif kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "dup":
            parts = bytes(out).split(b"\n")
            i = draw(st.integers(0, len(parts) - 1))
            out = bytearray(b"\n".join(parts[: i + 1] + parts[i:]))
    return bytes(out)


@PROPERTY
@given(blob=st.one_of(st.binary(max_size=3000),
                      st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"input"', b'"output"', b":",
                                                b",", b'"x"', b'"positive"', b"1" * 20, b"\n", b"\xff"]),
                               max_size=200).map(b"".join)),
       oversize=st.sampled_from(["truncate", "reject"]))
def test_property_arbitrary_jsonl_bytes(blob: bytes, oversize: str) -> None:
    only_task_or_invalid("t.jsonl", blob, train_msg("t.jsonl"), on_oversize=oversize, **SMALL)


@PROPERTY
@given(blob=mutated(VALID_JSONL, lines=True), oversize=st.sampled_from(["truncate", "reject"]))
def test_property_mutated_jsonl(blob: bytes, oversize: str) -> None:
    only_task_or_invalid("t.jsonl", blob, train_msg("t.jsonl"), on_oversize=oversize, **SMALL)


VALID_PARQUET = parquet_bytes(rows_table(8), row_group_size=3)


@PROPERTY
@given(blob=mutated(VALID_PARQUET, lines=False))
def test_property_mutated_parquet(blob: bytes) -> None:
    only_task_or_invalid("e.parquet", blob, eval_msg("e.parquet"), **SMALL)
