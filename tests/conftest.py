"""Shared fixtures and helpers."""

from __future__ import annotations

import json
from typing import Any

import pytest


def message(task_id: str = "t1", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "synlearner.task/v1",
        "task_id": task_id,
        "kind": "classification",
        "instruction": "Is this review positive or negative?",
        "labels": ["positive", "negative"],
        "train": [{"input": "great food", "output": "positive"},
                  {"input": "awful service", "output": "negative"}],
        "eval": [{"input": "lovely place", "output": "positive"}],
    }
    body.update(over)
    return body


def raw(task_id: str = "t1", **over: Any) -> bytes:
    return json.dumps(message(task_id, **over)).encode()


@pytest.fixture
def make_raw() -> Any:
    return raw
