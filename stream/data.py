"""Task examples kept in files (`data.train` / `data.eval`): JSONL or Parquet, under allowed roots.

A message names the file, so the file is as hostile as the message. The defences:

* Where. The path (local, no NUL byte) is resolved, symlinks included, and must lie inside
  one of `allowed_data_roots`. It is opened once (`O_NOFOLLOW | O_NONBLOCK`); what was
  opened must be a regular file (`fstat`) and itself lie inside a root (`/proc/self/fd`), so
  a path swapped after the check gains nothing. Every read uses that one descriptor.
* How much. A file holds at most `max_data_file_bytes` (its size when opened, and the bytes
  read). A JSONL line is read with a bound, never whole, holds at most `max_data_line_bytes`
  and parses through `loads_bounded` (UTF-8, `max_json_depth`, `max_number_chars`). A
  Parquet file's footer (rows, uncompressed bytes, column types) is checked before any data
  is read; rows then come in batches with `input` / `output` dictionary-encoded, so a
  kilobyte that expands to gigabytes is measured before it becomes Python strings, and
  reading stops at the first limit passed.
* Rows. With `on_oversize="reject"` a file holds at most its split's maximum
  (`max_train_examples` / `max_eval_examples`). With "truncate" it may hold more (the schema
  samples the split down) but never more than `ROWS_FACTOR` times that. Each row is an
  object with non-empty string `input` and `output` (a JSONL row of a preference task adds
  `rejected`, of a verification task `score`; Parquet files carry the two columns only).

Every failure is an `InvalidTask` naming the field (and the limit and its value, if one was
passed); the machine's trouble rather than the file's (out of descriptors, I/O errors) is
`SourceUnavailable`, so a good task is retried rather than dead-lettered.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from synlearner.stream.boundary import describe, is_transient
from synlearner.stream.errors import InvalidTask, SourceUnavailable
from synlearner.stream.safejson import loads_bounded
from synlearner.stream.schema import MAX_SCORE, Example, Limits

ROWS_FACTOR = 10  # "truncate": a file holds at most this many times its split's maximum
PARQUET_BATCH_ROWS = 1024
_COLUMNS = ("input", "output")
_PROC_FD = Path("/proc/self/fd")


def resolve_data_path(uri: str, field: str, limits: Limits) -> Path:
    """Resolve `uri` (a path or `file://` URI) to an existing regular file inside one of the
    allowed roots. Symlinks are followed, so one that leads out of the roots is refused."""
    raw = uri.removeprefix("file://")
    if "://" in raw:
        raise InvalidTask(f"{field}: only local paths or file:// URIs are accepted, got {_short(uri)}",
                          code="data_file")
    if "\x00" in raw:
        raise InvalidTask(f"{field}: the path contains a NUL byte", code="data_file")
    if not limits.allowed_data_roots:
        raise InvalidTask(f"{field}: data files are disabled (stream.limits.allowed_data_roots is empty)",
                          code="data_file")
    path = Path(raw)
    inside: list[tuple[Path, Path]] = []
    for root in _roots(limits, field):
        candidate = _resolved(path if path.is_absolute() else root / path, field)
        if candidate.is_relative_to(root):
            inside.append((root, candidate))
    if not inside:
        raise InvalidTask(f"{field}: {_short(uri)} is outside the allowed data roots", code="data_file")
    for _, candidate in inside:
        try:
            mode = os.stat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            _os_failure(field, exc)
        if not stat.S_ISREG(mode):
            raise InvalidTask(f"{field}: {_short(uri)} is not a regular file", code="data_file")
        return candidate
    raise InvalidTask(f"{field}: no such file {_short(uri)} under {inside[0][0]}", code="data_file")


def load_examples(uri: str, field: str, limits: Limits) -> list[Example]:
    """The examples in the file `uri` names, for `field` ("data.train" or "data.eval")."""
    path = resolve_data_path(uri, field, limits)
    reader = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".parquet": _read_parquet}.get(path.suffix)
    if reader is None:
        raise InvalidTask(f"{field}: unsupported file type {_short(path.suffix)} (use .jsonl or .parquet)",
                          code="data_file")
    with _open_inside(path, field, limits) as fh:
        try:
            return reader(fh, field, limits)
        except OSError as exc:
            _os_failure(field, exc)


def _open_inside(path: Path, field: str, limits: Limits) -> BinaryIO:
    """Open `path` once, then check what was opened: a regular file, inside a root, not too big."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidTask(f"{field}: {_short(path.name)} is a symbolic link", code="data_file") from None
        _os_failure(field, exc)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidTask(f"{field}: {_short(path.name)} is not a regular file", code="data_file")
        if _PROC_FD.is_dir():
            opened = Path(os.path.realpath(_PROC_FD / str(fd)))
            if not any(opened.is_relative_to(root) for root in _roots(limits, field)):
                raise InvalidTask(f"{field}: the opened file is outside the allowed data roots",
                                  code="data_file")
        if info.st_size > limits.max_data_file_bytes:
            raise InvalidTask(f"{field}: {info.st_size} bytes exceeds "
                              f"max_data_file_bytes={limits.max_data_file_bytes}", code="limit")
        return os.fdopen(fd, "rb")
    except OSError as exc:
        os.close(fd)
        _os_failure(field, exc)
    except BaseException:
        os.close(fd)
        raise


def _read_jsonl(fh: BinaryIO, field: str, limits: Limits) -> list[Example]:
    max_line, max_bytes = limits.max_data_line_bytes, limits.max_data_file_bytes
    max_rows, rows_limit = _row_bound(field, limits)
    max_lines, lines_limit = _row_bound(field, limits, ROWS_FACTOR)  # blank lines count here too
    out: list[Example] = []
    total = lines = 0
    while line := fh.readline(max_line + 2):  # the line, "\r\n", and a byte to tell it is too long
        lines += 1
        total += len(line)
        if total > max_bytes:
            raise InvalidTask(f"{field}: more than {max_bytes} bytes read exceeds "
                              f"max_data_file_bytes={max_bytes}", code="limit")
        body = line.rstrip(b"\r\n")
        if len(body) > max_line:
            raise InvalidTask(f"{field}: line {lines} is longer than max_data_line_bytes={max_line}",
                              code="limit")
        if not body.strip():
            if lines > max_lines:
                raise InvalidTask(f"{field}: more than {max_lines} lines exceeds {lines_limit}", code="limit")
            continue
        if len(out) >= max_rows:
            raise InvalidTask(f"{field}: more than {max_rows} examples exceeds {rows_limit}", code="limit")
        where = f"{field} line {lines}"
        out.append(_example(loads_bounded(body, where, limits.max_json_depth, limits.max_number_chars),
                            where))
    return out


def _read_parquet(fh: BinaryIO, field: str, limits: Limits) -> list[Example]:
    import pyarrow.parquet as pq  # arrives with `datasets`; imported here to keep it off the fast path

    try:
        footer = pq.ParquetFile(fh, pre_buffer=False)
        _check_parquet_metadata(footer, field, limits)
        # dictionary-encoded: a string repeated a million times is held once until measured
        pf = pq.ParquetFile(fh, metadata=footer.metadata, read_dictionary=list(_COLUMNS), pre_buffer=False)
        max_rows, rows_limit = _row_bound(field, limits)
        out: list[Example] = []
        total = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(_COLUMNS),
                                     use_threads=False):
            if len(out) + batch.num_rows > max_rows:
                raise InvalidTask(f"{field}: more than {max_rows} examples exceeds {rows_limit}",
                                  code="limit")
            columns = [batch.column(name) for name in _COLUMNS]
            total += sum(_string_bytes(col) for col in columns)
            if total > limits.max_data_file_bytes:
                raise InvalidTask(f"{field}: more than {limits.max_data_file_bytes} bytes of strings "
                                  f"exceeds max_data_file_bytes={limits.max_data_file_bytes}", code="limit")
            for inp, outp in zip(*(col.to_pylist() for col in columns), strict=True):
                out.append(_example({"input": inp, "output": outp}, f"{field}[{len(out)}]"))
        return out
    except InvalidTask:
        raise
    except Exception as exc:  # pyarrow raises many types (OSError, ValueError, ...) on a corrupt file
        if is_transient(exc):
            raise SourceUnavailable(f"{field}: {describe(exc)}") from exc
        raise InvalidTask(f"{field}: not a readable Parquet file ({describe(exc)})",
                          code="data_file") from None


def _check_parquet_metadata(pf: Any, field: str, limits: Limits) -> None:
    """Rows, uncompressed bytes and column types, from the footer, before any data is read."""
    import pyarrow as pa

    meta, schema = pf.metadata, pf.schema_arrow
    max_rows, rows_limit = _row_bound(field, limits)
    if meta.num_rows > max_rows:
        raise InvalidTask(f"{field}: {meta.num_rows} examples exceeds {rows_limit}", code="limit")
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > limits.max_data_file_bytes:
        raise InvalidTask(f"{field}: {size} bytes uncompressed exceeds "
                          f"max_data_file_bytes={limits.max_data_file_bytes}", code="limit")
    for name in _COLUMNS:
        index = schema.get_field_index(name)  # -1: missing, or more than one
        if index < 0:
            raise InvalidTask(f"{field}: the Parquet file needs one column {name!r}", code="data_file")
        kind = schema.field(index).type
        kind = kind.value_type if pa.types.is_dictionary(kind) else kind  # as written from Arrow
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InvalidTask(f"{field}: column {name!r} is {_short(str(kind))}, not a string column",
                              code="data_file")


def _string_bytes(column: Any) -> int:
    """UTF-8 bytes a (dictionary-encoded) string column expands to, without expanding it."""
    import pyarrow.compute as pc

    if hasattr(column, "dictionary"):
        return int(pc.sum(pc.binary_length(column.dictionary).take(column.indices)).as_py() or 0)
    return int(pc.sum(pc.binary_length(column)).as_py() or 0)


def _example(row: object, where: str) -> Example:
    inp = row.get("input") if isinstance(row, dict) else None
    out = row.get("output") if isinstance(row, dict) else None
    if not isinstance(inp, str) or not isinstance(out, str):
        raise InvalidTask(f"{where}: each row needs string 'input' and 'output'")
    if not inp or not out:
        raise InvalidTask(f"{where}: 'input' and 'output' must not be empty")
    assert isinstance(row, dict)
    rejected, score = row.get("rejected", ""), row.get("score")
    if not isinstance(rejected, str):
        raise InvalidTask(f"{where}.rejected: expected a string")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                              or not 0 <= score <= MAX_SCORE):
        raise InvalidTask(f"{where}.score: expected a number from 0 to {MAX_SCORE}")
    return Example(inp, out, rejected, None if score is None else float(score))


def _row_bound(field: str, limits: Limits, factor: int | None = None) -> tuple[int, str]:
    """The most rows a file for `field` may hold, and the limit that says so (for reasons):
    the split's maximum when over it is rejected, `ROWS_FACTOR` times it when it is cut."""
    split = "train" if field.endswith("train") else "eval"
    cap = limits.max_train_examples if split == "train" else limits.max_eval_examples
    factor = factor or (1 if limits.on_oversize == "reject" else ROWS_FACTOR)
    name = f"max_{split}_examples={cap}"
    return factor * cap, name if factor == 1 else f"{factor} x {name}"


def _roots(limits: Limits, field: str) -> list[Path]:
    return [_resolved(root, field) for root in limits.allowed_data_roots]


def _resolved(path: Path, field: str) -> Path:
    try:
        return path.resolve()
    except OSError as exc:
        _os_failure(field, exc)
    except (RuntimeError, ValueError) as exc:  # a symlink loop (Python < 3.13)
        raise InvalidTask(f"{field}: the path cannot be resolved ({describe(exc)})",
                          code="data_file") from None


def _os_failure(field: str, exc: OSError) -> NoReturn:
    """The machine's trouble (retry) or the file's (dead-letter)."""
    if is_transient(exc):
        raise SourceUnavailable(f"{field}: {describe(exc)}") from exc
    raise InvalidTask(f"{field}: the file cannot be used ({exc.strerror or describe(exc)})",
                      code="data_file") from None


def _short(value: str, limit: int = 120) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")
