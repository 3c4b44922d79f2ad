"""What the daemon publishes for every task it consumed (`synlearner.result/v1`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RESULT_SCHEMA_V1 = "synlearner.result/v1"


@dataclass(frozen=True)
class TaskResult:
    """What the daemon publishes for every task it consumed."""

    task_id: str
    status: Literal["learned", "duplicate", "failed", "invalid"]
    content_hash: str = ""
    version: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    adapter_path: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)
    error: str = ""
    truncated: Mapping[str, int] = field(default_factory=dict)  # what the daemon cut, by what
    # each learning method's figures by its name (learned only; absent when none)
    extras: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: bytes | str) -> TaskResult:
        """A result written by `to_json` (the daemon's own outbox, not untrusted input)."""
        body = json.loads(raw)
        body.pop("schema", None)
        return cls(**body)

    def to_json(self) -> bytes:
        body = {"schema": RESULT_SCHEMA_V1, **self.__dict__}
        body["metrics"] = dict(self.metrics)
        body["timings"] = dict(self.timings)
        body["truncated"] = dict(self.truncated)
        body["extras"] = {name: dict(figures) for name, figures in self.extras.items()}
        if not body["extras"]:
            del body["extras"]  # results without them read as they did
        return json.dumps(body, sort_keys=True).encode()
