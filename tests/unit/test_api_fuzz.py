"""The serving API fuzzed from its own OpenAPI document (schemathesis): whatever a client
sends, no 5xx (but the documented 503 of /readyz) and every answer conforms to the
document. Over an empty state: the paths a model answers are fuzzed in the integration
test of `synlearner serve`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from synlearner.daemon.api import create_app
from synlearner.daemon.config import ApiConfig, Config
from synlearner.daemon.serving import Predictor

_STATE = Path(tempfile.mkdtemp(prefix="synlearner-api-fuzz-")) / "state"
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Predictor(Config(state_dir=_STATE), {}), ApiConfig(max_inputs=8)))


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_holds_to_its_document(case: schemathesis.Case) -> None:
    response = case.call()
    not_ready = case.path == "/readyz" and response.status_code == 503  # documented: no state yet
    assert response.status_code < 500 or not_ready, response.text
    case.validate_response(response, excluded_checks=[not_a_server_error] if not_ready else None)
