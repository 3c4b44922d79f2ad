"""`synlearner serve`'s API over a state the daemon learned: the answers are the CLI's, a new
commit becomes visible without a restart, the limits answer 4xx naming the limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synlearner.daemon.tools.demo import demo_stream

pytestmark = pytest.mark.integration


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synlearner.daemon.tools.cli", "--config", str(cfg),
                           *args], capture_output=True, text=True, timeout=600, check=True)


def learn(cfg: Path, tmp_path: Path, tasks: list[dict]) -> None:  # type: ignore[type-arg]
    files = []
    for t in tasks:
        files.append(tmp_path / f"{t['task_id']}-{len(t['train'])}.json")
        files[-1].write_text(json.dumps(t))
    cli(cfg, "submit", *map(str, files))
    cli(cfg, "run", "--drain")


def test_the_api_answers_as_the_cli_and_sees_new_commits(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from synlearner.daemon.api import create_app
    from synlearner.daemon.build import build_learners
    from synlearner.daemon.config import load_config
    from synlearner.daemon.serving import Predictor

    state = tmp_path / "state"
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(
        f"state_dir: {state}\n"
        "stream: {poll_timeout_s: 0.2}\n"
        "learner: {train: {max_steps: 24, epochs: 3.0}}\n"
        "daemon: {http: {port: 0}, api: {max_inputs: 4, max_input_chars: 200, max_body_bytes: 4000, "
        "reload_check_s: 0.01}}\n"
    )
    restaurants, news = demo_stream(seed=3, n_train=32, n_eval=16)[:2]
    learn(cfg_path, tmp_path, [restaurants])
    cfg = load_config(cfg_path)
    predictor = Predictor(cfg, build_learners(cfg))
    client = TestClient(create_app(predictor, cfg.daemon.api))
    texts = ["The pasta was superb and the staff were kind.", "Cold soup, rude waiter, never again."]

    r = client.post("/v1/predict", json={"task_id": restaurants["task_id"], "inputs": texts})
    assert r.status_code == 200, r.text
    answers = r.json()["answers"]
    by_cli = [json.loads(line)["prediction"] for line in
              cli(cfg_path, "predict", "--task", restaurants["task_id"], *texts).stdout.splitlines()]
    assert [a["prediction"] for a in answers] == by_cli
    for a in answers:
        assert set(a["scores"]) == set(restaurants["labels"])
        assert abs(sum(a["scores"].values()) - 1) < 1e-3
        assert a["prediction"] == max(a["scores"], key=a["scores"].get)
        assert a["version"] == 1 and a["adapter"] == restaurants["task_id"]
    assert [t["task_id"] for t in client.get("/v1/tasks").json()] == [restaurants["task_id"]]
    assert client.get("/v1/tasks/nope").status_code == 404
    assert client.post("/v1/predict", json={"task_id": "nope", "inputs": ["x"]}).status_code == 404

    # the daemon learns a second task and a new version of the first: both are answered
    # from the new commits by the same server, without a restart
    relabelled = {**restaurants, "train": restaurants["train"][:24]}
    learn(cfg_path, tmp_path, [news, relabelled])
    r = client.post("/v1/predict", json={"inputs": ["The striker scored twice in the final."]})
    assert r.status_code == 200, r.text
    (routed,) = r.json()["answers"]
    assert routed["task_id"] == news["task_id"] and routed["prediction"] in news["labels"]
    assert routed["adapter"] == news["task_id"]  # routed to the task, answered by its adapter
    detail = client.get(f"/v1/tasks/{restaurants['task_id']}").json()
    assert detail["versions"] == [1, 2] and detail["version"] == 2
    r = client.post("/v1/predict", json={"task_id": restaurants["task_id"], "inputs": texts[:1]})
    assert r.json()["answers"][0]["version"] == 2
    assert predictor.reloads >= 1

    # limits: 4xx naming the limit, never a 5xx
    too_many = client.post("/v1/predict", json={"task_id": news["task_id"], "inputs": ["a"] * 5})
    assert too_many.status_code == 422 and "at most 4 items" in too_many.text
    too_long = client.post("/v1/predict", json={"task_id": news["task_id"], "inputs": ["a" * 201]})
    assert too_long.status_code == 422 and "at most 200 characters" in too_long.text
    body = client.post("/v1/predict", content=b'{"inputs": ["' + b"a" * 5000 + b'"]}',
                       headers={"content-type": "application/json"})
    assert body.status_code == 413 and "max_body_bytes (4000 bytes)" in body.text
    refine = client.post("/v1/predict", json={"task_id": news["task_id"], "inputs": ["a"], "refine": 2})
    assert refine.status_code == 400 and "refine needs a synthesis task" in refine.text
    assert client.post("/v1/predict", content=b"{", headers={"content-type": "application/json"}
                       ).status_code == 422
    assert client.get("/readyz").status_code == 200

    metrics = client.get("/metrics").text
    assert 'synlearner_api_request_seconds_count{route="/v1/predict",status="200"} 3.0' in metrics
    assert 'synlearner_api_request_seconds_count{route="/v1/predict",status="422"} 3.0' in metrics
    assert "synlearner_api_requests_in_flight 1.0" in metrics  # this request itself
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/predict", "/v1/tasks",
                                                                  "/v1/tasks/{task_id}"}

    # fuzzed from the document, with the model answering: no 5xx, every answer as documented
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import positive_data_acceptance

    operation = schemathesis.openapi.from_asgi("/openapi.json", client.app)["/v1/predict"]["POST"]

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call()
        assert response.status_code < 500, response.text
        # a valid request may still name an unlearned task (404) or refine a label (400)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    fuzz()
