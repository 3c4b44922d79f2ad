"""The serving API's limits and errors, over an empty state (no model needed)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from synlearner.daemon.api import create_app
from synlearner.daemon.config import ApiConfig, Config
from synlearner.daemon.serving import Predictor


def client(tmp_path: Path, **limits: int) -> TestClient:
    cfg = Config(state_dir=tmp_path / "state")
    return TestClient(create_app(Predictor(cfg, {}), ApiConfig(**limits)))


def test_nothing_learned_is_a_404_and_not_ready(tmp_path: Path) -> None:
    c = client(tmp_path)
    r = c.post("/v1/predict", json={"inputs": ["hello"]})
    assert r.status_code == 404 and "nothing has been learned yet" in r.text
    assert c.get("/v1/tasks").json() == []
    assert c.get("/v1/tasks/x").status_code == 404
    assert c.get("/readyz").status_code == 503 and c.get("/healthz").status_code == 200


def test_each_limit_is_a_4xx_that_names_it(tmp_path: Path) -> None:
    c = client(tmp_path, max_inputs=2, max_input_chars=10, max_body_bytes=300, max_refine=1)
    cases = [
        ({"inputs": ["a", "b", "c"]}, 422, "at most 2 items"),
        ({"inputs": []}, 422, "at least 1 item"),
        ({"inputs": ["a" * 11]}, 422, "at most 10 characters"),
        ({"inputs": ["a"], "refine": 2}, 422, "less than or equal to 1"),
        ({"inputs": ["a"], "extra": 1}, 422, "Extra inputs are not permitted"),
        ({"inputs": [3]}, 422, "valid string"),
    ]
    for body, status, needle in cases:
        r = c.post("/v1/predict", json=body)
        assert r.status_code == status and needle in r.text, (body, r.text)
    big = b'{"inputs": ["' + b"a" * 400 + b'"]}'
    r = c.post("/v1/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "daemon.api.max_body_bytes (300 bytes)" in r.text

    def chunks():  # no Content-Length: counted as it streams
        yield big[:200]
        yield big[200:]

    r = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = c.post("/v1/predict", content=b'{"inputs": [', headers={"content-type": "application/json"})
    assert r.status_code == 422
