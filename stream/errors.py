"""The two ways a message or a source can fail, as the consume loop tells them apart.

* `InvalidTask`: the message itself is at fault. It is dead-lettered with `reason`, which
  names the field and the limit, and counted by `code` (a small fixed set, so it can be a
  metric label).
* `SourceUnavailable`: the stream is at fault (a broker or a dead-letter / results topic
  down, a full disk under the spool). The message is fine: the daemon backs off, holds
  consumption and retries it; it is never dead-lettered for this.
"""

from __future__ import annotations

from typing import Literal, get_args

# why a message was dead-lettered (bounded: a metric label)
DeadLetterCode = Literal[
    "not_json",  # not UTF-8 JSON, or not an object
    "schema",  # fields missing, unknown, of the wrong type or pattern
    "limit",  # a size limit (bytes, depth, number, examples, chars, labels)
    "data_file",  # a referenced data file that cannot be used
    "unreadable",  # the source could not read it (a symlink, a FIFO, a directory, ...)
    "unsupported",  # a kind no learner is configured for
    "crashed",  # the process died while handling it, max_attempts times
    "learning_failed",  # a valid task that could not be learned
    "internal",  # an unexpected error while decoding it (a bug, reported with its type)
    "out_of_memory",  # learning it ran out of memory on every one of max_attempts tries
    "parked",  # held on a resource fault, and moved aside by an operator
]
DEAD_LETTER_CODES: tuple[str, ...] = get_args(DeadLetterCode)


class InvalidTask(ValueError):
    """A message that cannot become a `Task`; `reason` says which field and which limit."""

    def __init__(self, reason: str, task_id: str | None = None,
                 code: DeadLetterCode = "schema") -> None:
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id
        self.code: DeadLetterCode = code


class SourceUnavailable(RuntimeError):
    """The source or one of its sinks cannot be reached now; retry later, keep the message."""


class StorageFault(SourceUnavailable):
    """The daemon's own storage failed while keeping what a task produced (its adapter, its
    memory records, its commit): whatever the error says, nothing in a message makes that
    fail, so the stream holds (and alerts) rather than dead-letter every task after it."""
