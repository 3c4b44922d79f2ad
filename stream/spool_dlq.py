"""Dead letters of the spool directory: list them, and put them back into `incoming/`.

A dead letter is the original message file in `failed/` with its error record (reason, when,
attempts) beside it: `<name>.error.json`, or for a name too long for that a bounded one
(`spool.error_path`). Requeueing moves the file back into `incoming/` under its own name (or
a fresh one if that is taken) and removes the error record, so the daemon takes it up again
as a new message with a fresh attempt count. Requeueing all of them leaves out those
quarantined for crashing the process (`crashed`): they go back only when named.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from synlearner.stream.base import DeadLetter
from synlearner.stream.io import fsync_dir
from synlearner.stream.spool import dead_letter_names, error_path, unique_path

# the reason the daemon gives a message it quarantined (stream.max_attempts, code `crashed`)
_CRASHED = re.compile(r"crashed \d+ times\b")


def crashed(letter: DeadLetter) -> bool:
    """Quarantined for crashing the process (`crashed N times: ...`): a poison pill that
    requeueing everything must not re-arm (spool and Kafka alike)."""
    return _CRASHED.match(letter.reason) is not None


def list_dead_letters(root: Path) -> list[DeadLetter]:
    failed = Path(root) / "failed"
    out = []
    for name in dead_letter_names(failed):
        try:
            error = json.loads(error_path(failed / name).read_bytes())
        except (OSError, ValueError):
            error = {}
        if not isinstance(error, dict):
            error = {}
        try:
            when = float(error.get("failed_at") or os.lstat(failed / name).st_mtime)
        except FileNotFoundError:  # requeued or expired meanwhile
            continue
        out.append(DeadLetter(
            id=name, reason=str(error.get("reason", "(no error record)")), when=when,
            attempts=int(error.get("attempts") or 0), source=str(error.get("ref", name))))
    return out


def requeue(root: Path, ids: Sequence[str] | None) -> list[str]:
    """Move dead letters `ids` back into `incoming/`; returns the new names. `ids` None: every
    dead letter but those quarantined for crashing the process (`crashed`)."""
    failed, incoming = Path(root) / "failed", Path(root) / "incoming"
    letters = list_dead_letters(root)
    known = {d.id for d in letters}
    wanted = [d.id for d in letters if not crashed(d)] if ids is None else list(ids)
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise KeyError(f"no such dead letter: {', '.join(map(repr, unknown))}")
    moved = []
    for name in wanted:
        target = unique_path(incoming / name)
        os.replace(failed / name, target)
        error_path(failed / name).unlink(missing_ok=True)
        moved.append(target.name)
    if moved:
        fsync_dir(incoming)
        fsync_dir(failed)
    return moved
