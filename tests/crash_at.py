"""`python tests/crash_at.py TASK STEP CLI-ARGS...`: run the synlearner CLI and SIGKILL the
process when task TASK reaches training step STEP, every time it is run: a message that
kills the process at the same point every time (a segfault in a kernel, the OOM killer on
one huge batch), made deterministic for the quarantine tests."""

from __future__ import annotations

import os
import signal
import sys

from synlearner.daemon.loop import Daemon
from synlearner.daemon.tools.cli import main
from synlearner.learner.base import Progress

TASK, STEP = sys.argv[1], int(sys.argv[2])
_progress = Daemon._progress


def _killing_progress(self: Daemon, task_id: str) -> Progress:
    report = _progress(self, task_id)

    def progress(phase: str, step: int, total: int, loss: float) -> None:
        report(phase, step, total, loss)
        if task_id == TASK and step == STEP:
            os.kill(os.getpid(), signal.SIGKILL)

    return progress


Daemon._progress = _killing_progress  # type: ignore[method-assign]  # the fault injected
sys.exit(main(sys.argv[3:]))
