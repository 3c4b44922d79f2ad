from __future__ import annotations

from pathlib import Path

import pytest

from synlearner.daemon.build import build_limits, build_source
from synlearner.daemon.config import Config, ConfigError, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_there_are_configs() -> None:
    assert {p.name for p in CONFIGS} >= {"default.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_builds(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path, {"state_dir": str(tmp_path)}, env={})
    assert isinstance(cfg, Config)
    assert cfg.stream.limits == build_limits(cfg)
    source, results = build_source(cfg)
    assert source.pending() == 0
    source.close()
    results.close()


def test_default_yaml_matches_the_built_in_defaults() -> None:
    assert load_config(Path(__file__).parents[2] / "configs/default.yaml", env={}) == Config()


def test_unknown_keys_fail_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("memory:\n  indx: flat\n")
    with pytest.raises(ConfigError, match=r"memory\.indx: Extra inputs are not permitted"):
        load_config(bad, env={})
    bad.write_text("memory:\n  index: annoy\n")
    with pytest.raises(ConfigError, match=r"memory\.index"):
        load_config(bad, env={})


def test_environment_overrides(tmp_path: Path) -> None:
    env = {"SYNLEARNER__DAEMON__HTTP__PORT": "9500", "SYNLEARNER__MEMORY__INDEX": "hnsw",
           "SYNLEARNER__STATE_DIR": str(tmp_path), "OTHER": "x"}
    cfg = load_config(None, env=env)
    assert cfg.daemon.http.port == 9500 and cfg.memory.index == "hnsw"
    assert cfg.state_dir == tmp_path and cfg.spool_dir == tmp_path / "spool"
    with pytest.raises(ConfigError, match="nope"):
        load_config(None, env={"SYNLEARNER__DAEMON__NOPE": "1"})
