"""How often each message died at the same point without being settled, counted durably.

A message that kills the process (an exception the loop cannot catch, `os._exit`, the OOM
killer, a segfault) would otherwise be handed out again after every restart and kill the
daemon again, forever. A process killed from outside (a restart, the OOM killer under
another process's load, a crash-looping host) dies wherever it happens to be instead, and
the message it held is as good as any. The two are told apart by where an attempt died:
before a message is worked on, its attempt is written and fsynced; how far it gets (the
phase, the training step, the task being scored) is noted as it goes (no fsync: a process
crash keeps the page cache). An attempt that died at the point the one before it died (the
same note, or training of the same task one step apart, `same_point`) adds to the
message's count; one that died anywhere else starts the count again at one. A message whose
count reaches `max_attempts` is dead-lettered with `crashed N times at the same point:
<that point>`; so is one taken up `FLOOR` x `max_attempts` times without settling, wherever
it died (a crash that wanders). Once settled (learned, duplicate, dead
letter) its record is removed.

Records are small JSON files named after the delivery's `ref`, which every source keeps
stable across restarts: sidecars in the spool's `processing/` (beside the message) or
files under the state directory for Kafka (`topic/partition/offset`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from synlearner.stream.io import write_atomic

SUFFIX = ".attempts"
FLOOR = 5  # x max_attempts: taken up this often without settling, a message is quarantined


STEP = re.compile(r"^(.*) step (\d+)/(\d+)( of .*)$")  # how the daemon notes training


def same_point(a: str, b: str | None) -> bool:
    """Whether two attempts died at the same point: the same note, or training of the same
    task one step apart at most (a kill races the step it lands in; the total may differ
    where the replay changed)."""
    if b is None:
        return False
    if a == b:
        return True
    ma, mb = STEP.match(a), STEP.match(b)
    if not (ma and mb) or (ma[1], ma[4]) != (mb[1], mb[4]):
        return False
    return abs(int(ma[2]) - int(mb[2])) <= 1


@dataclass(frozen=True)
class Attempt:
    number: int  # 1 for the first time a message is taken up
    last: str  # where the previous attempt died ("" when it noted nothing)
    same: int = 0  # the latest deaths in a row at one point (a requested stop is none)


class Attempts:
    def __init__(self, root: Path, sidecar: bool = False, max_age_s: float = 30 * 86400) -> None:
        """`sidecar`: records sit beside their messages, and one whose message is gone is
        dropped; otherwise records untouched for `max_age_s` are dropped on start."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sidecar = sidecar
        self._prune(max_age_s)

    def _path(self, ref: str) -> Path:
        name = quote(ref, safe="")
        if len(name) > 200:
            name = hashlib.sha256(ref.encode()).hexdigest()
        return self.root / f"{name}{SUFFIX}"

    def _read(self, ref: str) -> dict[str, Any]:
        try:
            body = json.loads(self._path(ref).read_bytes())
            body["attempts"] = int(body["attempts"])
            return dict(body)
        except (OSError, ValueError, KeyError, TypeError):
            return {"attempts": 0, "last": None}

    def _write(self, ref: str, body: dict[str, Any], durable: bool) -> None:
        if isinstance(body.get("last"), str):
            body["last"] = body["last"][:500]
        raw = json.dumps({**body, "ref": ref, "at": time.time()}).encode()
        if durable:
            write_atomic(self._path(ref), raw)
        else:
            tmp = self._path(ref).with_name(f".{self._path(ref).name}.tmp")
            tmp.write_bytes(raw)
            os.replace(tmp, self._path(ref))

    def begin(self, ref: str) -> Attempt:
        """Count one more attempt at `ref`, durably, before any work on it."""
        body = self._read(ref)
        died: str | None = body.get("last")  # None: no attempt died (or none was made)
        same, point = int(body.get("same", 0)), body.get("point")
        if died is not None:
            same, point = (same + 1, point) if same and same_point(died, point) else (1, died)
        self._write(ref, {"attempts": body["attempts"] + 1, "same": same, "point": point,
                          "last": ""}, durable=True)
        return Attempt(body["attempts"] + 1, died or "", same)

    def count(self, ref: str) -> int:
        """Attempts counted so far at `ref`."""
        return int(self._read(ref)["attempts"])

    def note(self, ref: str, text: str) -> None:
        """Remember how far the current attempt got (where it died, if it never finishes)."""
        body = self._read(ref)
        self._write(ref, {**body, "attempts": max(body["attempts"], 1), "last": text},
                    durable=False)

    def undo(self, ref: str) -> None:
        """The attempt ended by a requested stop: it does not count against the message."""
        body = self._read(ref)
        if body["attempts"] <= 1:
            self.clear(ref)
        else:
            self._write(ref, {**body, "attempts": body["attempts"] - 1, "last": None},
                        durable=True)

    def clear(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)

    def _prune(self, max_age_s: float) -> None:
        now = time.time()
        for path in self.root.glob(f"*{SUFFIX}"):
            try:
                if self.sidecar:
                    ref = json.loads(path.read_bytes())["ref"]
                    stale = not os.path.lexists(self.root / ref)
                else:
                    stale = now - path.stat().st_mtime > max_age_s
            except (OSError, ValueError, KeyError, TypeError):
                stale = True
            if stale:
                path.unlink(missing_ok=True)
