"""Environment overrides stay raw strings, and config errors never show a value."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from synlearner.daemon.config import ConfigError, load_config

PASSWORD = "SYNLEARNER__STREAM__KAFKA__SASL_PASSWORD"


def test_a_secret_with_a_hash_is_kept_whole() -> None:
    cfg = load_config(None, env={PASSWORD: "abc #tail"})
    assert cfg.stream.kafka.sasl_password is not None
    assert cfg.stream.kafka.sasl_password.get_secret_value() == "abc #tail"
    assert cfg.stream.kafka.common()["sasl_plain_password"] == "abc #tail"


@pytest.mark.parametrize("secret", ["[x", "{x", "[1, 2]", '{"a": 1}', "&anchor *alias", "null"])
def test_yaml_and_json_lookalikes_stay_raw_strings(secret: str) -> None:
    cfg = load_config(None, env={PASSWORD: secret})
    assert cfg.stream.kafka.sasl_password is not None
    assert cfg.stream.kafka.sasl_password.get_secret_value() == secret


def test_the_password_is_not_shown_by_repr_or_str() -> None:
    cfg = load_config(None, env={PASSWORD: "hunter2-secret"})
    for text in (repr(cfg), str(cfg), repr(cfg.stream.kafka), str(cfg.stream.kafka)):
        assert "hunter2-secret" not in text
    assert cfg.stream.kafka.common()["sasl_plain_password"] == "hunter2-secret"
    assert "sasl_plain_password" not in load_config(None, env={}).stream.kafka.common()


def test_an_invalid_port_names_the_key_not_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env={"SYNLEARNER__DAEMON__HTTP__PORT": "s3cr3t-value"})
    assert "daemon.http.port" in str(err.value)
    assert "s3cr3t-value" not in str(err.value)


@pytest.mark.parametrize(("key", "value"), [
    ("SYNLEARNER__STREAM__KAFKA__BOOTSTRAP_SERVERS", "[not json, s3cr3t"),
    ("SYNLEARNER__STREAM__KAFKA__BOOTSTRAP_SERVERS", "s3cr3t:9092"),
    ("SYNLEARNER__MEMORY__INDEX", "s3cr3t"),
    ("SYNLEARNER__DAEMON__DRAIN", "s3cr3t"),
    ("SYNLEARNER__DAEMON__HTTP", "s3cr3t"),
])
def test_errors_never_show_the_value(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env={key: value})
    assert "s3cr3t" not in "".join(traceback.format_exception(err.value))  # what the journal gets


def test_yaml_file_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stream:\n  kafka:\n    sasl_password: [s3cr3t\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(bad, env={})
    assert "s3cr3t" not in str(err.value)


def test_values_are_converted_by_type() -> None:
    env = {
        "SYNLEARNER__DAEMON__HTTP__PORT": "9500",
        "SYNLEARNER__DAEMON__DRAIN": "true",
        "SYNLEARNER__MEMORY__REPLAY__RATIO": "0.25",
        "SYNLEARNER__DAEMON__HTTP__REQUEST_TIMEOUT_S": "2.5",
        "SYNLEARNER__DAEMON__HTTP__MAX_CONNECTIONS": "4",
        "SYNLEARNER__STREAM__KAFKA__BOOTSTRAP_SERVERS": ' ["a:1", "b:2"] ',
        "SYNLEARNER__STREAM__KAFKA__TOPIC": "tasks,more",
        "SYNLEARNER__LEARNER__LORA__TARGET_MODULES": '["query"]',
        "SYNLEARNER__STREAM__LIMITS__ALLOWED_DATA_ROOTS": '["/data"]',
    }
    cfg = load_config(None, env=env)
    assert cfg.daemon.http.port == 9500 and cfg.daemon.drain is True
    assert cfg.memory.replay.ratio == 0.25
    assert cfg.daemon.http.request_timeout_s == 2.5 and cfg.daemon.http.max_connections == 4
    assert cfg.stream.kafka.bootstrap_servers == ["a:1", "b:2"]
    assert cfg.stream.kafka.topic == "tasks,more"
    assert cfg.learner.lora.target_modules == ["query"]
    assert cfg.stream.limits.allowed_data_roots == (Path("/data"),)


def test_a_whole_section_as_a_json_object() -> None:
    cfg = load_config(None, env={"SYNLEARNER__DAEMON__HTTP": '{"host": "::1", "port": 1}'})
    assert cfg.daemon.http.host == "::1" and cfg.daemon.http.port == 1
