"""The one guarded boundary between raw bytes and a validated `Task`.

Everything a message brings (its bytes, the data files it references) is decoded here,
and nothing but a `Task`, an `InvalidTask` (the message is at fault: dead-letter it with
the reason) or a `SourceUnavailable` (the machine is at fault: keep the message, retry)
comes out, whatever the input. Parsing is bounded before it starts (bytes, JSON depth,
number sizes, data-file bytes and rows), so it does not depend on Python's recursion limit
or on big-integer conversion.
"""

from __future__ import annotations

import errno
import sqlite3

from synlearner.stream.errors import InvalidTask, SourceUnavailable
from synlearner.stream.schema import Limits, Task, parse_task

# the machine, not the message: out of disk, files, memory for buffers
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE,
                              errno.ENOMEM, errno.EAGAIN, errno.EIO, errno.EROFS})
# SQLite's primary result codes for the same: busy or locked by another process, read-only
# (a disk remounted after I/O errors), an I/O error, corrupt, a full disk, a database file
# that cannot be opened now, not a database: none is a message's doing
SQLITE_TRANSIENT = frozenset({5, 6, 8, 10, 11, 13, 14, 26})
MAX_REASON_CHARS = 300


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the machine or the stream is in trouble rather than the message.

    Such a failure must never dead-letter a good task: the caller backs off and retries.
    Faults are told apart by their type and code (errno, SQLite's result code), never by
    their text, which a message's own content can fill.
    """
    return any(_machine_fault(e) for e in _chain(exc))


def _machine_fault(exc: BaseException) -> bool:
    if isinstance(exc, SourceUnavailable):
        return True
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return True
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", 0) & 0xFF) in SQLITE_TRANSIENT


def _chain(exc: BaseException, limit: int = 8) -> list[BaseException]:
    """`exc` and the errors it was raised from or while handling (a library's wrapping)."""
    out: list[BaseException] = []
    at: BaseException | None = exc
    while at is not None and at not in out and len(out) < limit:
        out.append(at)
        at = at.__cause__ or at.__context__
    return out


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed (torch.OutOfMemoryError, Python's MemoryError): the
    machine's memory or the task's size; retried a bounded number of times, then counted
    against the task."""
    return any(isinstance(e, MemoryError) or any(  # torch.OutOfMemoryError, without torch
        c.__name__ == "OutOfMemoryError" and c.__module__.split(".")[0] == "torch"
        for c in type(e).__mro__) for e in _chain(exc))


def describe(exc: BaseException) -> str:
    """`Type: message`, bounded, on one line (for reasons, logs and headers)."""
    text = " ".join(str(exc).split())
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def decode(raw: bytes, limits: Limits) -> Task:
    """Raw message bytes to a `Task`; raises only `InvalidTask` or `SourceUnavailable`."""
    try:
        return parse_task(raw, limits)
    except (InvalidTask, SourceUnavailable):
        raise
    except Exception as exc:  # noqa: BLE001  # the boundary: any other failure is the message's
        if is_transient(exc):
            raise SourceUnavailable(describe(exc)) from exc
        raise InvalidTask(f"message: could not be decoded ({describe(exc)})",
                          code="internal") from None
