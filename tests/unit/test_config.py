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


@pytest.mark.parametrize("body", [
    "a: " + "[" * 5000 + "]" * 5000,  # the YAML composer recursed past Python's limit
    "daemon:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(40)) + "      x: 1\n",
    "k: v\n" * 300_000,  # over 1 MiB
    "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(  # 511 bytes that expand to 10^9
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    "\xff\xfe",
])
def test_a_config_nested_too_deep_or_too_big_is_one_error_line(tmp_path: Path, body: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(body.encode("latin-1") if body == "\xff\xfe" else body.encode())
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)


def test_the_cli_turns_a_bad_config_or_state_into_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from synlearner.daemon.tools.cli import main

    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000)
    assert main(["--config", str(deep), "status"]) == 2
    assert main(["--config", str(tmp_path / "missing.yaml"), "status"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("synlearner: ") for line in err)
    assert "nested more than 16 levels" in err[0] and "missing.yaml" in err[1]


def test_sighup_with_a_bad_config_keeps_the_running_one(tmp_path: Path) -> None:
    from synlearner.stream import InMemorySource
    from tests.unit.doubles import CentroidLearner, unit_config, unit_daemon

    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000)
    daemon = unit_daemon(unit_config(tmp_path / "state"), InMemorySource([]), CentroidLearner())
    running = daemon.cfg
    daemon.config_loader = lambda: load_config(deep, env={})
    daemon.reload_config()
    assert daemon.cfg is running
    assert daemon.metrics.config_reloads.labels(outcome="invalid")._value.get() == 1


def test_renamed_keys_are_read_under_their_old_name_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("learner:\n  generation:\n    phases: [sft, self_train]\n"
                    "    synthesis: {phases: [sft]}\n")
    cfg = load_config(path, env={})
    assert cfg.learner.generation.methods == ("sft", "self_train")
    assert cfg.learner.generation.synthesis.methods == ("sft",)
    assert "learner.generation.phases is the old name of learner.generation.methods" in caplog.text
    path.write_text("learner:\n  generation: {phases: [sft], methods: [sft]}\n")
    with pytest.raises(ConfigError, match="give learner.generation.methods only"):
        load_config(path, env={})


def test_a_default_method_that_is_not_registered_stops_the_start(tmp_path: Path) -> None:
    from synlearner.daemon.build import build_daemon

    cfg = load_config(None, {"state_dir": str(tmp_path), "learner.generation.methods": ["dance"]},
                      env={})
    with pytest.raises(ConfigError, match="'dance' is not a method"):
        build_daemon(cfg)
