"""The embedded default stream: a durable spool directory.

Layout under `root`:

    incoming/    producers drop `*.json` task messages here (write elsewhere, then rename)
    processing/  a message claimed by the daemon (atomic rename out of incoming/)
    done/        acknowledged: everything the task produced is durable
    failed/      dead letters: the original message plus `<name>.error.json`
    results.jsonl  one TaskResult per line

A restart hands out what was left in processing/ first, so nothing acknowledged is lost
and nothing unacknowledged is dropped. One daemon per spool directory.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

from synlearner.stream.base import Delivery
from synlearner.stream.schema import TaskResult

_SUBDIRS = ("incoming", "processing", "done", "failed")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class SpoolSource:
    def __init__(self, root: Path, poll_interval_s: float = 0.2) -> None:
        self.root = Path(root)
        self.poll_interval_s = poll_interval_s
        for sub in _SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._claimed: set[str] = set()

    def _candidates(self) -> list[Path]:
        leftovers = sorted(
            p for p in (self.root / "processing").glob("*.json") if p.name not in self._claimed
        )
        if leftovers:
            return leftovers
        return sorted((self.root / "incoming").glob("*.json"))

    def poll(self, timeout_s: float) -> Delivery | None:
        deadline = time.monotonic() + timeout_s
        while True:
            for path in self._candidates():
                delivery = self._claim(path)
                if delivery is not None:
                    return delivery
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(self.poll_interval_s, max(0.0, deadline - time.monotonic())))

    def _claim(self, path: Path) -> Delivery | None:
        target = self.root / "processing" / path.name
        if path.parent.name == "incoming":
            try:
                os.rename(path, target)
            except FileNotFoundError:  # taken by someone else meanwhile
                return None
            fsync_dir(target.parent)
        self._claimed.add(target.name)
        return Delivery(
            raw=target.read_bytes(), ref=target.name, published_at=target.stat().st_mtime
        )

    def ack(self, delivery: Delivery) -> None:
        self._release(delivery, "done")

    def fail(self, delivery: Delivery, reason: str) -> None:
        error = {"reason": reason, "ref": delivery.ref, "failed_at": time.time()}
        write_atomic(
            self.root / "failed" / f"{delivery.ref}.error.json",
            json.dumps(error, indent=2).encode(),
        )
        self._release(delivery, "failed")

    def _release(self, delivery: Delivery, where: str) -> None:
        src = self.root / "processing" / delivery.ref
        os.replace(src, self.root / where / delivery.ref)
        fsync_dir(self.root / where)
        fsync_dir(src.parent)
        self._claimed.discard(delivery.ref)

    def pending(self) -> int:
        processing = sum(
            1 for p in (self.root / "processing").glob("*.json") if p.name not in self._claimed
        )
        return processing + sum(1 for _ in (self.root / "incoming").glob("*.json"))

    def close(self) -> None:
        self._claimed.clear()


class SpoolPublisher:
    """Drops task messages into `incoming/` atomically, in submission order."""

    _seq = itertools.count()

    def __init__(self, root: Path) -> None:
        self.incoming = Path(root) / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)

    def submit(self, raw: bytes, key: str) -> str:
        safe_key = "".join(c if c.isalnum() or c in "._-" else "_" for c in key)[:128]
        name = f"{time.time_ns():020d}-{next(self._seq):06d}-{safe_key}.json"
        write_atomic(self.incoming / name, raw)
        return name

    def close(self) -> None:
        pass


class JsonlResultSink:
    """Appends one JSON line per result to `path`, flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def publish(self, result: TaskResult) -> None:
        with self.path.open("ab") as fh:
            fh.write(result.to_json() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_bytes().splitlines() if line]

    def close(self) -> None:
        pass
