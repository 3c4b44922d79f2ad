"""Moving a held message aside: an operator's way out of a hold that does not end.

A message whose handling holds on a resource fault (a full disk, a database locked by
another process, a data file the disk cannot read) is retried until the fault is gone,
without counting an attempt. When the operator cannot or will not clear the fault,
`synlearner dead-letters park [--task ID]` writes a request file into the state directory,
valid until the command stops waiting; the daemon reads it while it waits between retries,
dead-letters the held message (code `parked`, to be requeued once the fault is fixed) and
removes the request, which tells the command it was done. A request that names another task
than the held one is left alone; one nobody took in time is withdrawn, and an expired one
is never taken.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from synlearner.stream.io import write_atomic

REQUEST = "park-request.json"


def request_park(state_dir: Path, task_id: str | None, wait_s: float) -> Path:
    """Ask the daemon of `state_dir` to park its held message (that of `task_id` only, if
    given) within `wait_s`; returns the request file, removed by the daemon once it parked
    one."""
    path = state_dir / REQUEST
    body = {"task_id": task_id, "until": time.time() + wait_s}
    write_atomic(path, json.dumps(body).encode())
    return path


def take_park_request(state_dir: Path, task_id: str | None) -> bool:
    """Whether a park request for the held message (of `task_id`, None: not decoded yet) is
    waiting; it is taken (removed). An expired request is removed and not taken."""
    path = state_dir / REQUEST
    try:
        body = json.loads(path.read_bytes())
        wanted, until = body.get("task_id"), float(body["until"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return False
    if until < time.time():
        path.unlink(missing_ok=True)
        return False
    if wanted is not None and wanted != task_id:
        return False
    path.unlink(missing_ok=True)
    return True


def wait_parked(path: Path, timeout_s: float) -> bool:
    """Wait for the daemon to take the request at `path`; withdraw it if nobody did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not path.exists():
            return True
        time.sleep(0.2)
    path.unlink(missing_ok=True)
    return False
