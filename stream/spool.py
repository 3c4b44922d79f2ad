"""The embedded default stream: a durable spool directory.

Layout under `root`:

    incoming/    producers drop `*.json` task messages here (write elsewhere, then rename)
    processing/  a message claimed by the daemon (atomic rename out of incoming/)
    done/        acknowledged: everything the task produced is durable
    failed/      dead letters: the original message plus its error record (reason, attempts)
                 `<name>.error.json`; listed and requeued by `spool_dlq`
    results.jsonl  one TaskResult per line

A restart hands out what was left in processing/ first, so nothing acknowledged is lost
and nothing unacknowledged is dropped. One daemon per spool directory.

Producers choose file names. Every name the spool derives from one (an error record, a
temporary file, a fresh name beside a taken one) is bounded by `io.fit_name`, so a name of
any length the file system took is learned or dead-lettered like any other. In `failed/`,
a name ending in `.error.json` is an error record and nothing else: a message whose own
name ends so is given another (`<stem>.<n>.json`) as it enters. `FailedRetention` deletes
the oldest dead letters past an age and a count, so a flood of invalid messages cannot
fill the disk.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import logging
import os
import shutil
import stat
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from synlearner.stream.base import Delivery
from synlearner.stream.config import StreamConfig
from synlearner.stream.errors import SourceUnavailable
from synlearner.stream.io import fit_name, fsync_dir, write_atomic
from synlearner.stream.schema import TaskResult

log = logging.getLogger(__name__)

_SUBDIRS = ("incoming", "processing", "done", "failed")
_DEFAULTS = StreamConfig()  # the declared defaults of the failed/ retention
ERROR_SUFFIX = ".error.json"


def lock_dir(path: Path, what: str) -> int:
    """Hold an exclusive `flock` on `path/.lock` for the life of the process (returns the fd).

    Two daemons sharing one state or spool directory would corrupt each other's work."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"{what} {str(path)!r} is in use by another synlearner process") from None
    return fd


def unique_path(path: Path, free: Callable[[Path], bool] | None = None) -> Path:
    """`path`, or `<stem>.<n><suffix>` beside it when `path` is taken (never overwrite a
    record); `free(candidate)` may refuse more than taken names. Bounded by `fit_name`."""
    free = free or (lambda p: not os.path.lexists(p))
    if free(path):
        return path
    stem, suffix = path.stem, path.suffix
    if len(suffix) > 16:  # not an extension: keep the whole name together
        stem, suffix = path.name, ""
    n = time.time_ns()
    while not free(candidate := path.with_name(fit_name(f"{stem}.{n}", suffix))):
        n += 1
    return candidate


def error_path(message: Path) -> Path:
    """Where the error record of the dead letter `message` is (a bounded name)."""
    return message.with_name(fit_name(message.name, ERROR_SUFFIX))


def dead_letter_path(failed: Path, name: str) -> Path:
    """A free path in `failed/` for the message `name`: its own name unless that is taken,
    would read as an error record, or its error record's name is taken."""
    def free(path: Path) -> bool:
        return (not path.name.endswith(ERROR_SUFFIX) and not os.path.lexists(path)
                and not os.path.lexists(error_path(path)))

    return unique_path(failed / name, free)


def dead_letter_names(failed: Path) -> list[str]:
    """The dead letters' file names in `failed/` (not their error records, not temporary
    files), sorted."""
    try:
        names = os.listdir(failed)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith(".") and not n.endswith(ERROR_SUFFIX))


class SpoolSource:
    """Hands out `incoming/*.json` in name order; what is left in `processing/` first.

    An entry is claimed by renaming it (whatever it is) into `processing/`, then opened with
    `O_NOFOLLOW | O_NONBLOCK`: a symlink, a FIFO, a directory or another non-regular entry
    becomes a delivery with `rejected` set (dead-lettered by the daemon), and at most
    `max_bytes + 1` bytes of a regular file are read, so an oversized file costs no memory.

    Each dead letter written also expires the oldest in `failed/` past `failed_max_age_s`
    and `failed_max_count` (0: no limit; see `FailedRetention`).
    """

    def __init__(self, root: Path, poll_interval_s: float = 0.2,
                 max_bytes: int = 4 * 1024 * 1024,
                 failed_max_age_s: float = _DEFAULTS.failed_max_age_s,
                 failed_max_count: int = _DEFAULTS.failed_max_count) -> None:
        self.root = Path(root)
        self.poll_interval_s = poll_interval_s
        self.max_bytes = max_bytes
        for sub in _SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._claimed: set[str] = set()
        self.retention = FailedRetention(self.root / "failed", failed_max_age_s, failed_max_count)

    def _names(self, sub: str) -> list[str]:
        with os.scandir(self.root / sub) as entries:
            return sorted(e.name for e in entries
                          if e.name.endswith(".json") and not e.name.startswith("."))

    def _candidates(self) -> list[Path]:
        leftovers = [n for n in self._names("processing") if n not in self._claimed]
        if leftovers:
            return [self.root / "processing" / n for n in leftovers]
        return [self.root / "incoming" / n for n in self._names("incoming")]

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
            if os.path.lexists(target):  # a leftover of the same name: keep both
                target = unique_path(target)
            try:
                os.rename(path, target)
            except FileNotFoundError:  # taken by someone else meanwhile
                return None
            fsync_dir(target.parent)
        self._claimed.add(target.name)
        raw, rejected, mtime = self._read(target)
        return Delivery(raw=raw, ref=target.name, published_at=mtime, rejected=rejected)

    def _read(self, path: Path) -> tuple[bytes, str, float]:
        """At most `max_bytes + 1` bytes of a regular file; else why it cannot be read."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return b"", "message: a symlink, not a regular file", 0.0
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                self._claimed.discard(path.name)
                raise SourceUnavailable(f"spool: cannot open {path.name!r}: {exc.strerror}") from exc
            return b"", f"message: cannot be opened ({exc.strerror})", 0.0
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return b"", f"message: not a regular file ({_file_type(st.st_mode)})", st.st_mtime
            chunks, left = [], self.max_bytes + 1
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks), "", st.st_mtime
        finally:
            os.close(fd)

    def ack(self, delivery: Delivery) -> None:
        self._release(delivery, unique_path(self.root / "done" / delivery.ref))

    def fail(self, delivery: Delivery, reason: str) -> None:
        moved = self._release(delivery, dead_letter_path(self.root / "failed", delivery.ref))
        if moved is None:
            return
        error = {"reason": reason, "ref": delivery.ref, "failed_at": time.time(),
                 "attempts": int(delivery.attrs.get("attempts", "0") or 0)}
        write_atomic(error_path(moved), json.dumps(error, indent=2).encode())
        expired = self.retention.added(moved.name)
        if expired:
            log.info("spool: %d dead letters expired from failed/ (older than %g s or beyond "
                     "%d)", expired, self.retention.max_age_s, self.retention.max_count)

    def _release(self, delivery: Delivery, dst: Path) -> Path | None:
        src = self.root / "processing" / delivery.ref
        self._claimed.discard(delivery.ref)
        try:
            os.replace(src, dst)
        except FileNotFoundError:
            log.warning("spool: %r vanished from processing/ before it could move to %s/",
                        delivery.ref, dst.parent.name)
            return None
        fsync_dir(dst.parent)
        fsync_dir(src.parent)
        return dst

    def pending(self) -> int:
        processing = sum(1 for n in self._names("processing") if n not in self._claimed)
        return processing + len(self._names("incoming"))

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        self._claimed.clear()


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


class SpoolPublisher:
    """Drops task messages into `incoming/` atomically, in submission order."""

    _seq = itertools.count()

    def __init__(self, root: Path) -> None:
        self.incoming = Path(root) / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)

    def submit(self, raw: bytes, key: str) -> str:
        safe_key = "".join(c if c.isalnum() or c in "._-" else "_" for c in key)[:128]
        name = fit_name(f"{time.time_ns():020d}-{next(self._seq):06d}-{safe_key}", ".json")
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
        with self.path.open("a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:  # a line torn by a crash is closed, so this one stands alone
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
            fh.write(result.to_json() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict[str, object]]:
        """Every complete result; a line torn by a crash is skipped."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_bytes().splitlines():
            try:
                body = json.loads(line)
            except ValueError:
                continue
            if isinstance(body, dict):
                out.append(body)
        return out

    def close(self) -> None:
        pass


def expire_done(root: Path, max_age_s: float, now: float | None = None) -> int:
    """Delete acknowledged messages (`done/`) older than `max_age_s`; returns how many.
    Dead letters (`failed/`) are kept: an operator requeues or deletes them."""
    cutoff = (now if now is not None else time.time()) - max_age_s
    removed = 0
    for path in (root / "done").iterdir() if (root / "done").is_dir() else ():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


class FailedRetention:
    """Keeps `failed/` within `max_age_s` and `max_count` dead letters (0: no limit), deleting
    the oldest first (by their error records' time: when they were dead-lettered).

    It reads the folder on first use and again every `rescan_s` (to see what was requeued or
    deleted meanwhile); in between, each dead letter written costs O(1).
    """

    def __init__(self, failed: Path, max_age_s: float, max_count: int,
                 rescan_s: float = 3600.0) -> None:
        self.failed = Path(failed)
        self.max_age_s = max_age_s
        self.max_count = max_count
        self.rescan_s = rescan_s
        self._letters: deque[tuple[float, str]] = deque()  # (when, name), oldest first
        self._scanned_at: float | None = None

    def expire(self, now: float | None = None) -> int:
        """Read `failed/` and delete what is over the limits; returns how many were deleted."""
        now = time.time() if now is None else now
        self._letters = deque(sorted(_dead_letter_times(self.failed)))
        self._scanned_at = now
        return self._drop(now)

    def added(self, name: str, now: float | None = None) -> int:
        """The dead letter `name` was just written: delete what is now over the limits."""
        now = time.time() if now is None else now
        if not (self.max_age_s or self.max_count):
            return 0
        if self._scanned_at is None or now - self._scanned_at >= self.rescan_s:
            return self.expire(now)
        self._letters.append((now, name))
        return self._drop(now)

    def _drop(self, now: float) -> int:
        removed = 0
        while self._letters and (
                (self.max_count and len(self._letters) > self.max_count)
                or (self.max_age_s and self._letters[0][0] < now - self.max_age_s)):
            removed += _delete_dead_letter(self.failed / self._letters.popleft()[1])
        return removed


def expire_failed(root: Path, max_age_s: float, max_count: int, now: float | None = None) -> int:
    """Delete the dead letters of `root/failed` past the limits (0: none); returns how many."""
    if not (max_age_s or max_count):
        return 0
    return FailedRetention(Path(root) / "failed", max_age_s, max_count).expire(now)


def _dead_letter_times(failed: Path) -> list[tuple[float, str]]:
    """(when it was dead-lettered, name) of each dead letter: its error record's time."""
    out = []
    for name in dead_letter_names(failed):
        for path in (error_path(failed / name), failed / name):
            try:
                out.append((os.lstat(path).st_mtime, name))
                break
            except FileNotFoundError:
                continue
    return out


def _delete_dead_letter(message: Path) -> bool:
    """Its error record first: a crash in between leaves a dead letter without a record,
    still listed and still expired. False when it was gone already."""
    error_path(message).unlink(missing_ok=True)
    try:
        if stat.S_ISDIR(os.lstat(message).st_mode):  # a directory dropped into incoming/
            shutil.rmtree(message, ignore_errors=True)
        else:
            message.unlink()
    except FileNotFoundError:
        return False
    return True


def rotate_results(path: Path, max_bytes: int) -> bool:
    """Past `max_bytes`, move `results.jsonl` to `results.jsonl.1` (replacing the one
    before); the next result starts a new file. Returns whether it rotated."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    os.replace(path, path.with_name(path.name + ".1"))
    fsync_dir(path.parent)
    return True
