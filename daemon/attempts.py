"""How often each message was taken up without being settled, counted durably.

A message that kills the process (an exception the loop cannot catch, `os._exit`, the OOM
killer, a segfault) would otherwise be handed out again after every restart and kill the
daemon again, forever. Before a message is worked on, its attempt number is written and
fsynced; the phase it reaches is noted as it goes (no fsync: a process crash keeps the
page cache). Once settled (learned, duplicate, dead letter) its record is removed. A
message taken up more than `max_attempts` times is dead-lettered with
`crashed N times: <what was last noted>`.

Records are small JSON files named after the delivery's `ref`, which every source keeps
stable across restarts: sidecars in the spool's `processing/` (beside the message) or
files under the state directory for Kafka (`topic/partition/offset`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from synlearner.stream.io import write_atomic

SUFFIX = ".attempts"


@dataclass(frozen=True)
class Attempt:
    number: int  # 1 for the first time a message is taken up
    last: str  # what was noted during the previous attempt ("" when nothing)


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

    def _read(self, ref: str) -> tuple[int, str]:
        try:
            body = json.loads(self._path(ref).read_bytes())
            return int(body["attempts"]), str(body.get("last", ""))
        except (OSError, ValueError, KeyError, TypeError):
            return 0, ""

    def _write(self, ref: str, number: int, last: str, durable: bool) -> None:
        body = json.dumps({"ref": ref, "attempts": number, "last": last[:500],
                           "at": time.time()}).encode()
        if durable:
            write_atomic(self._path(ref), body)
        else:
            tmp = self._path(ref).with_name(f".{self._path(ref).name}.tmp")
            tmp.write_bytes(body)
            os.replace(tmp, self._path(ref))

    def begin(self, ref: str) -> Attempt:
        """Count one more attempt at `ref`, durably, before any work on it."""
        number, last = self._read(ref)
        self._write(ref, number + 1, "", durable=True)
        return Attempt(number + 1, last)

    def count(self, ref: str) -> int:
        """Attempts counted so far at `ref`."""
        return self._read(ref)[0]

    def note(self, ref: str, text: str) -> None:
        """Remember how far the current attempt got (reported if it never finishes)."""
        number, _ = self._read(ref)
        self._write(ref, max(number, 1), text, durable=False)

    def undo(self, ref: str) -> None:
        """The attempt ended by a requested stop: it does not count against the message."""
        number, _ = self._read(ref)
        if number <= 1:
            self.clear(ref)
        else:
            self._write(ref, number - 1, "", durable=True)

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
