"""A bind beyond loopback needs a bearer token; with one, /v1/* and /metrics ask for it, the
probes never do, and it is never logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from synlearner.daemon.api import create_app
from synlearner.daemon.config import ApiConfig, Config, ConfigError, HttpConfig, load_config
from synlearner.daemon.serving import Predictor
from synlearner.daemon.tools.cli import main

TOKEN = "s3cret-api-token-0123456789"


def client(tmp_path: Path, token: str | None = TOKEN) -> TestClient:
    cfg = Config(state_dir=tmp_path / "state")
    return TestClient(create_app(Predictor(cfg, {}), ApiConfig(token=token)))


@pytest.mark.parametrize(("section", "model"), [("api", ApiConfig), ("http", HttpConfig)])
def test_a_bind_beyond_loopback_without_a_token_is_refused(
        section: str, model: type[ApiConfig | HttpConfig]) -> None:
    with pytest.raises(ValidationError, match=f"daemon.{section}.token"):
        model(host="0.0.0.0")
    with pytest.raises(ConfigError) as refused:
        load_config(None, env={f"SYNLEARNER__DAEMON__{section.upper()}__HOST": "0.0.0.0"})
    assert len(str(refused.value).splitlines()) == 1
    assert f"SYNLEARNER__DAEMON__{section.upper()}__TOKEN" in str(refused.value)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_config(None, env={f"SYNLEARNER__DAEMON__{section.upper()}__TOKEN": "short"})
    cfg = load_config(None, env={f"SYNLEARNER__DAEMON__{section.upper()}__HOST": "0.0.0.0",
                                 f"SYNLEARNER__DAEMON__{section.upper()}__TOKEN": TOKEN})
    part = getattr(cfg.daemon, section)
    assert part.token is not None and part.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(cfg) and TOKEN not in str(cfg) and TOKEN not in cfg.model_dump_json()
    assert model(host="::1").token is None and model(host="localhost").token is None


def test_serve_beyond_loopback_without_a_token_stops_with_one_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\n")
    assert main(["--config", str(cfg), "serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "daemon.api.token" in err, err


def test_with_a_token_v1_and_metrics_ask_for_it_and_probes_do_not(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = client(tmp_path)
    good = {"Authorization": f"Bearer {TOKEN}"}
    with caplog.at_level(logging.DEBUG):
        for method, path in [("GET", "/v1/tasks"), ("GET", "/v1/tasks/x"), ("GET", "/metrics"),
                             ("POST", "/v1/predict"), ("GET", "/v1/nothing-here")]:
            for headers in [{}, {"Authorization": "Bearer wrong-token-0123456789"},
                            {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
                            {"Authorization": f"Bearer {TOKEN}x"}]:
                r = c.request(method, path, headers=headers, content=b"{not json")
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["WWW-Authenticate"] == "Bearer" and TOKEN not in r.text
        assert c.get("/v1/tasks", headers=good).json() == []
        assert c.get("/v1/tasks/x", headers=good).status_code == 404
        assert c.get("/metrics", headers=good).status_code == 200
        r = c.post("/v1/predict", headers=good, json={"inputs": ["hello"]})
        assert r.status_code == 404 and "nothing has been learned" in r.text
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503  # no state yet, but not 401
    assert TOKEN not in caplog.text


def test_without_a_token_nothing_asks_for_one(tmp_path: Path) -> None:
    c = client(tmp_path, token=None)
    assert c.get("/v1/tasks").status_code == 200 and c.get("/metrics").status_code == 200
    assert "401" not in c.get("/openapi.json").json()["paths"]["/v1/tasks"]["get"]["responses"]


def test_the_document_says_which_routes_ask_for_the_token(tmp_path: Path) -> None:
    doc = client(tmp_path).get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method in [("/v1/predict", "post"), ("/v1/tasks", "get"),
                         ("/v1/tasks/{task_id}", "get"), ("/metrics", "get")]:
        operation = doc["paths"][path][method]
        assert "401" in operation["responses"] and operation["security"] == [{"HTTPBearer": []}]
    for path in ("/healthz", "/readyz"):
        operation = doc["paths"][path]["get"]
        assert "401" not in operation["responses"] and "security" not in operation
