"""Task data kept in files (`data.train` / `data.eval`): JSONL or Parquet, under allowed roots."""

from __future__ import annotations

import json
from pathlib import Path

from synlearner.stream.schema import Example, InvalidTask, Limits


def resolve_data_path(uri: str, field: str, limits: Limits) -> Path:
    """Resolve `uri` (a path or `file://` URI) inside one of the allowed roots."""
    raw = uri.removeprefix("file://")
    if "://" in raw:
        raise InvalidTask(f"{field}: only local paths or file:// URIs are accepted, got {uri!r}")
    if not limits.allowed_data_roots:
        raise InvalidTask(f"{field}: data files are disabled (stream.limits.allowed_data_roots is empty)")
    path = Path(raw)
    for root in limits.allowed_data_roots:
        root = root.resolve()
        candidate = (path if path.is_absolute() else root / path).resolve()
        if candidate.is_relative_to(root):
            if not candidate.is_file():
                raise InvalidTask(f"{field}: no such file {uri!r} under {root}")
            return candidate
    raise InvalidTask(f"{field}: {uri!r} is outside the allowed data roots")


def load_examples(uri: str, field: str, limits: Limits) -> list[Example]:
    path = resolve_data_path(uri, field, limits)
    cap = limits.max_train_examples if field.endswith("train") else limits.max_eval_examples
    if path.suffix == ".parquet":
        rows = _read_parquet(path, field, cap)
    elif path.suffix in (".jsonl", ".json"):
        rows = _read_jsonl(path, field, cap)
    else:
        raise InvalidTask(f"{field}: unsupported file type {path.suffix!r} (use .jsonl or .parquet)")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("input"), str) or not isinstance(
            row.get("output"), str
        ):
            raise InvalidTask(f"{field}[{i}]: each row needs string 'input' and 'output'")
        out.append(Example(row["input"], row["output"]))
    return out


def _read_jsonl(path: Path, field: str, cap: int) -> list[object]:
    rows: list[object] = []
    with path.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            if len(rows) >= cap:
                raise InvalidTask(f"{field}: more than {cap} examples in {path.name}")
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidTask(f"{field}: line {n + 1} of {path.name} is not JSON ({exc})") from None
    return rows


def _read_parquet(path: Path, field: str, cap: int) -> list[object]:
    import pyarrow.parquet as pq  # arrives with `datasets`

    table = pq.read_table(path, columns=["input", "output"])
    if table.num_rows > cap:
        raise InvalidTask(f"{field}: {table.num_rows} examples in {path.name} exceeds {cap}")
    return list(table.to_pylist())
