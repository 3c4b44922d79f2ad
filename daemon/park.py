"""Moving a held message aside: an operator's way out of a hold that does not end.

A message whose learning holds on a resource fault (a full disk, a database locked by
another process) is retried until the fault is gone, without counting an attempt. When the
operator cannot or will not clear the fault, `synlearner dead-letters park [--task ID]`
writes a request file into the state directory; the daemon reads it while it waits between
retries, dead-letters the held message (code `parked`, requeue it later) and removes the
request, which tells the command it was done. A request that names another task than the
held one is left alone; one nobody takes is withdrawn by the command that wrote it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from synlearner.stream.io import write_atomic

REQUEST = "park-request.json"


def request_park(state_dir: Path, task_id: str | None) -> Path:
    """Ask the daemon of `state_dir` to park its held message (that of `task_id` only, if
    given); returns the request file, removed by the daemon once it parked one."""
    path = state_dir / REQUEST
    write_atomic(path, json.dumps({"task_id": task_id, "at": time.time()}).encode())
    return path


def take_park_request(state_dir: Path, task_id: str) -> bool:
    """Whether a park request for the held `task_id` is waiting; it is taken (removed)."""
    path = state_dir / REQUEST
    try:
        wanted = json.loads(path.read_bytes()).get("task_id")
    except (OSError, ValueError, AttributeError):
        return False
    if wanted not in (None, task_id):
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
