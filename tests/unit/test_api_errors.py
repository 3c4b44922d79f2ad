"""What the API answers to input JSON cannot write back, and what its errors never show:
the input, a traceback, the state directory's path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from synlearner.daemon.api import create_app
from synlearner.daemon.config import ApiConfig, Config
from synlearner.daemon.serving import Predictor


def client(tmp_path: Path, **limits: Any) -> tuple[TestClient, Predictor]:
    predictor = Predictor(Config(state_dir=tmp_path / "state"), {})
    return TestClient(create_app(predictor, ApiConfig(**limits))), predictor


@pytest.mark.parametrize(("body", "loc", "needle"), [
    (b'{"inputs": ["a \\ud800 b"]}', ["body", "inputs", 0], "valid string"),
    (b'{"inputs": ["a"], "task_id": "\\udfff"}', ["body", "task_id"], "valid string"),
    (b'{"inputs": ["a"], "threshold": NaN}', ["body", "threshold"], "finite number"),
    (b'{"inputs": ["a"], "threshold": Infinity}', ["body", "threshold"], "finite number"),
    (b'{"inputs": ["a"], "\\ud800": 1}', ["body"], "valid string"),
])
def test_input_json_cannot_write_back_is_a_422_naming_the_field(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, body: bytes, loc: list[Any],
        needle: str) -> None:
    c, _ = client(tmp_path)
    with caplog.at_level(logging.DEBUG):
        r = c.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == loc and needle in error["msg"]
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR]


def test_a_422_names_the_field_and_the_limit_but_never_echoes_the_input(tmp_path: Path) -> None:
    c, _ = client(tmp_path, max_input_chars=10)
    r = c.post("/v1/predict", json={"inputs": ["secret-" * 3]})
    assert r.status_code == 422 and "at most 10 characters" in r.text
    assert r.json()["detail"][0]["loc"] == ["body", "inputs", 0] and "secret" not in r.text


def test_a_missing_adapter_is_a_503_that_does_not_show_where_the_state_is(tmp_path: Path) -> None:
    c, predictor = client(tmp_path)
    missing = tmp_path / "state" / "adapters" / "t-1" / "adapter_model.safetensors"

    def gone(*_args: Any) -> list[Any]:
        raise FileNotFoundError(2, "No such file or directory", str(missing))

    predictor._predict = gone  # type: ignore[method-assign]
    r = c.post("/v1/predict", json={"task_id": "t", "inputs": ["a"]})
    assert r.status_code == 503 and "adapters/t-1/adapter_model.safetensors" in r.text
    assert str(tmp_path) not in r.text


def test_the_document_lists_413_and_a_503_with_retry_after(tmp_path: Path) -> None:
    c, _ = client(tmp_path)
    predict = c.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["responses"]
    assert {"200", "400", "404", "413", "422", "503"} <= predict.keys()
    assert "Retry-After" in predict["503"]["headers"]
