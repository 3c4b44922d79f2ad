"""`synlearner install-service` into a staging root: unit, config, env file, state dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from synlearner.daemon.tools.install import CHECKOUT, install


def test_install_service_writes_the_unit_config_and_state_dir_and_keeps_a_config(
        tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "synlearner.daemon.tools.cli", "install-service",
                          "--root", str(tmp_path), "--user", "svc"],
                         capture_output=True, text=True, check=True).stdout
    unit = (tmp_path / "etc/systemd/system/synlearner.service").read_text()
    exe = Path(sys.prefix) / "bin" / "synlearner"
    assert f"ExecStart={exe} --config /etc/synlearner/config.yaml run" in unit
    assert "User=svc\nGroup=svc" in unit and "StateDirectory=synlearner" in unit
    config = tmp_path / "etc/synlearner/config.yaml"
    assert config.read_text() == (CHECKOUT / "configs/default.yaml").read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert (tmp_path / "var/lib/synlearner").is_dir()
    assert "systemctl enable --now synlearner" in out and "useradd --system" in out
    config.write_text("daemon: {log_level: DEBUG}\n")  # an operator's edit survives a reinstall
    lines = install(tmp_path, "svc")
    assert f"kept {config}" in lines and config.read_text() == "daemon: {log_level: DEBUG}\n"


def test_a_state_dir_elsewhere_is_named_writable_in_the_unit(tmp_path: Path) -> None:
    install(tmp_path, "svc", Path("/srv/learner"), exe=Path("/x/bin/synlearner"))
    unit = (tmp_path / "etc/systemd/system/synlearner.service").read_text()
    assert "WorkingDirectory=/srv/learner" in unit and "SYNLEARNER__STATE_DIR=/srv/learner" in unit
    assert "ReadWritePaths=/srv/learner" in unit and "StateDirectory=" not in unit
    assert (tmp_path / "srv/learner").is_dir()
