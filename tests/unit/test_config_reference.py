"""The configuration reference is generated from the config models: `configs/default.yaml`
and `docs/configuration.md` are exactly what the generator writes, every key of the models
is in them, and every key has a one-line description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from synlearner.daemon.config import LIVE_SETTINGS, Config, load_config
from synlearner.daemon.config_reference import defaults_yaml, entries, reference_markdown
from synlearner.daemon.tools.cli import main

ROOT = Path(__file__).parents[2]
DEFAULT_YAML = ROOT / "configs" / "default.yaml"
REFERENCE_MD = ROOT / "docs" / "configuration.md"
REGENERATE = ("regenerate both from the code: synlearner config defaults > configs/default.yaml "
              "&& synlearner config docs > docs/configuration.md")


def _model_keys(model: type[BaseModel], prefix: str = "") -> dict[str, bool]:
    """Every dotted key the models declare, walked over the classes (not the generator),
    mapped to whether it is a section."""
    keys: dict[str, bool] = {}
    for name, field in model.model_fields.items():
        key, sub = prefix + name, field.annotation
        section = isinstance(sub, type) and issubclass(sub, BaseModel)
        keys[key] = section
        if section:
            keys |= _model_keys(sub, key + ".")
    return keys


def _yaml_keys(data: dict[str, Any], sections: dict[str, bool], prefix: str = "") -> set[str]:
    """Every dotted key of a loaded YAML mapping, into mappings the models call sections
    (or do not know); a setting whose value is a mapping (e.g. `weights`) is one key."""
    keys: set[str] = set()
    for name, value in data.items():
        key = prefix + name
        keys.add(key)
        if isinstance(value, dict) and sections.get(key, True):
            keys |= _yaml_keys(value, sections, key + ".")
    return keys


def test_every_key_has_a_one_line_description() -> None:
    def walk(model: type[BaseModel], prefix: str = "") -> list[str]:
        bad = []
        for name, field in model.model_fields.items():
            text = field.description or ""
            if not text.strip() or "\n" in text or text != text.strip():
                bad.append(f"{prefix}{name}: {text!r}")
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                bad += walk(sub, f"{prefix}{name}.")
        return bad

    assert walk(Config) == [], "give each a Field(..., description=\"one line\") beside its default"


def test_default_yaml_holds_every_key_of_the_models_and_no_other() -> None:
    sections = _model_keys(Config)
    in_file = _yaml_keys(yaml.safe_load(DEFAULT_YAML.read_text()), sections)
    assert in_file == set(sections), (
        f"missing from configs/default.yaml: {sorted(set(sections) - in_file)}; "
        f"unknown to the models: {sorted(in_file - set(sections))}; {REGENERATE}")


def test_the_generator_names_every_key_of_the_models() -> None:
    assert [e.key for e in entries()] == list(_model_keys(Config))


def test_default_yaml_is_the_generated_defaults() -> None:
    assert DEFAULT_YAML.read_bytes() == defaults_yaml().encode(), \
        f"configs/default.yaml is not what the code generates; {REGENERATE}"


def test_configuration_md_is_the_generated_reference() -> None:
    assert REFERENCE_MD.read_bytes() == reference_markdown().encode(), \
        f"docs/configuration.md is not what the code generates; {REGENERATE}"


def test_the_generated_defaults_load_as_the_built_in_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(defaults_yaml())
    assert load_config(path, env={}) == Config()


@pytest.mark.parametrize(("what", "generate"), [("defaults", defaults_yaml), ("docs", reference_markdown)])
def test_the_cli_prints_the_generated_text(
        what: str, generate: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", what]) == 0
    assert capsys.readouterr().out == generate()


def test_secrets_print_as_null_with_where_to_set_them() -> None:
    lines = defaults_yaml().splitlines()
    secrets = [e for e in entries() if e.secret]
    assert {e.key for e in secrets} >= {"daemon.http.token", "daemon.api.token",
                                        "stream.kafka.sasl_password"}
    for entry in secrets:
        indent = "  " * (len(entry.path) - 1)
        at = lines.index(f"{indent}# {entry.full_help}")
        assert lines[at + 1] == f"{indent}{entry.path[-1]}: null"
        assert entry.env in lines[at] and "environment" in lines[at]
    assert "SYNLEARNER__DAEMON__HTTP__TOKEN" in reference_markdown()


def test_a_set_secret_never_reaches_the_reference() -> None:
    cfg = load_config(overrides={"daemon.api.token": "s3cret-token-of-20-chars"}, env={})
    assert all("s3cret" not in str(e.value) for e in entries(cfg))


def test_the_reference_says_which_keys_sighup_applies() -> None:
    leaves = {k for k, section in _model_keys(Config).items() if not section}
    assert set(LIVE_SETTINGS) <= leaves, "LIVE_SETTINGS names a key the config lacks"
    rows = {line.split(" | ")[0].strip("|` "): line.rsplit(" | ", 1)[1].strip(" |")
            for line in reference_markdown().splitlines() if line.startswith("| `")}
    assert rows.keys() == leaves
    assert {k for k, live in rows.items() if live == "yes"} == set(LIVE_SETTINGS)
    assert rows["state_dir"] == "restart"


def test_markdown_cells_escape_what_would_break_the_table() -> None:
    text = reference_markdown()
    row = next(line for line in text.splitlines() if line.startswith("| `stream.kind` |"))
    assert row.count(" | ") == 3  # the help's `|` choices are escaped, not columns
    assert "&lt;state_dir>" in text  # not an HTML tag
