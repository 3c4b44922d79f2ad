"""Dead letters of the spool directory: list them, and put them back into `incoming/`.

A dead letter is the original message file in `failed/` with `<name>.error.json` beside it
(reason, when, attempts). Requeueing moves the file back into `incoming/` under its own
name (or a fresh one if that is taken) and removes the error record, so the daemon takes it
up again as a new message with a fresh attempt count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from synlearner.stream.base import DeadLetter
from synlearner.stream.io import fsync_dir
from synlearner.stream.spool import unique_path

ERROR_SUFFIX = ".error.json"


def list_dead_letters(root: Path) -> list[DeadLetter]:
    failed = Path(root) / "failed"
    if not failed.is_dir():
        return []
    out = []
    for name in sorted(os.listdir(failed)):
        if name.endswith(ERROR_SUFFIX) or name.startswith("."):
            continue
        try:
            error = json.loads((failed / f"{name}{ERROR_SUFFIX}").read_bytes())
        except (OSError, ValueError):
            error = {}
        if not isinstance(error, dict):
            error = {}
        out.append(DeadLetter(
            id=name, reason=str(error.get("reason", "(no error record)")),
            when=float(error.get("failed_at") or os.lstat(failed / name).st_mtime),
            attempts=int(error.get("attempts") or 0), source=str(error.get("ref", name))))
    return out


def requeue(root: Path, ids: Sequence[str] | None) -> list[str]:
    """Move dead letters `ids` (None: all) back into `incoming/`; returns the new names."""
    failed, incoming = Path(root) / "failed", Path(root) / "incoming"
    known = {d.id for d in list_dead_letters(root)}
    wanted = sorted(known) if ids is None else list(ids)
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise KeyError(f"no such dead letter: {', '.join(map(repr, unknown))}")
    moved = []
    for name in wanted:
        target = unique_path(incoming / name)
        os.replace(failed / name, target)
        (failed / f"{name}{ERROR_SUFFIX}").unlink(missing_ok=True)
        moved.append(target.name)
    if moved:
        fsync_dir(incoming)
        fsync_dir(failed)
    return moved
