"""`synlearner install-service` into a staging root: unit, config, env file, state dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synlearner.daemon.tools.cli import main
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


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`synlearner install-service ARGS` in this process: exit code, stdout, stderr."""
    code = main(["install-service", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(result: tuple[int, str, str], *words: str) -> None:
    """Exit code 2 and one line on stderr that says what is wrong (a traceback would have
    failed the test already)."""
    code, _, err = result
    assert code == 2, err
    assert err.startswith("install-service: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err


@pytest.mark.skipif(Path("/etc/synlearner").exists(), reason="synlearner is installed here")
def test_a_user_that_does_not_exist_is_refused_on_the_live_root_before_anything_is_written(
        capsys: pytest.CaptureFixture[str]) -> None:
    refused(cli(capsys, "--user", "nosuchuser"), "'nosuchuser' does not exist",
            "useradd --system --home /var/lib/synlearner --shell /usr/sbin/nologin nosuchuser")
    assert not Path("/etc/synlearner").exists()


def test_staged_for_a_user_yet_to_be_created_the_steps_come_in_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--root", str(tmp_path), "--user", "svc", "--state-dir",
                         "/srv/learner")
    assert code == 0, err
    steps = [line.strip() for line in out.split("then, as root:")[1].splitlines() if line]
    assert steps[:3] == [
        "useradd --system --home /srv/learner --shell /usr/sbin/nologin svc",
        "chown svc:svc /srv/learner",
        "chown root:svc /etc/synlearner/config.yaml /etc/synlearner/synlearner.env"]
    assert steps.index("systemctl enable --now synlearner") > 2


@pytest.mark.parametrize(("args", "words"), [
    (["--state-dir", "/srv/syn state"], ["'/srv/syn state'", "no spaces"]),
    (["--state-dir", "srv/learner"], ["'srv/learner'", "absolute path"]),
    (["--state-dir", "/srv/../../etc"], ["no '..'"]),
    (["--state-dir", "/srv/%h"], ["'/srv/%h'"]),
    (["--user", "svc\nExecStartPre=/bin/sh"], ["not a user name"]),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        words: list[str]) -> None:
    refused(cli(capsys, "--root", str(tmp_path / "root"), *args), *words)
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("link", ["etc/synlearner", "etc/systemd",
                                  "etc/systemd/system/synlearner.service",
                                  "etc/synlearner/synlearner.env", "var/lib/synlearner"])
def test_it_never_writes_through_a_symlink_in_the_root(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / link).parent.mkdir(parents=True)
    (root / link).symlink_to(elsewhere / "target")
    refused(cli(capsys, "--root", str(root)), str(root / link), "symlink")
    assert not list(elsewhere.iterdir())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_staged_unit_verifies(tmp_path: Path) -> None:
    install(tmp_path, "svc", Path("/srv/learner"), exe=Path(sys.prefix) / "bin" / "synlearner")
    unit = tmp_path / "etc/systemd/system/synlearner.service"
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


@pytest.mark.parametrize(("state_dir", "words"), [
    ("/", ["'/'", "at least two levels deep"]),
    ("/srv", ["'/srv'", "at least two levels deep"]),
    ("/etc", ["'/etc'", "system tree /etc"]),
    ("/etc/synlearner", ["'/etc/synlearner'", "system tree /etc"]),  # its own config folder
    ("//etc", ["'/etc'", "system tree /etc"]),
    ("/./etc/", ["'/etc'", "system tree /etc"]),
    ("/usr/bin", ["'/usr/bin'", "system tree /usr"]),
    ("/usr/local/synlearner", ["system tree /usr"]),
    ("/lib64/synlearner", ["system tree /lib64"]),
    ("/boot/x", ["system tree /boot"]),
    ("/var/run/synlearner", ["system tree /var/run"]),
    ("/run/synlearner", ["system tree /run"]),
    ("/root/state", ["system tree /root"]),
    ("/tmp/synlearner", ["system tree /tmp"]),
    ("/var/lib", ["'/var/lib'", "such as /var/lib/synlearner"]),
])
def test_a_state_dir_it_must_not_take_over_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], state_dir: str,
        words: list[str]) -> None:
    """It would be made 0750 and, as root, given to the service user: with the default
    --root /, a typo would lock every other user out of / or /etc."""
    refused(cli(capsys, "--root", str(tmp_path / "root"), "--user", "svc",
                "--state-dir", state_dir), *words)
    assert not (tmp_path / "root").exists()


def test_a_state_dir_with_doubled_slashes_is_the_same_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--root", str(tmp_path), "--user", "svc", "--state-dir",
                         "//srv//learner/")
    assert code == 0, err
    unit = (tmp_path / "etc/systemd/system/synlearner.service").read_text()
    assert "ReadWritePaths=/srv/learner\n" in unit and "//" not in unit.replace("file://", "")
    assert (tmp_path / "srv/learner").is_dir() and "//srv" not in out


def test_an_existing_folder_is_taken_only_empty_or_as_a_state_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    data = root / "srv/data"
    data.mkdir(parents=True)
    (data / "thesis.tex").write_text("years of work")
    data.chmod(0o755)
    refused(cli(capsys, "--root", str(root), "--user", "svc", "--state-dir", "/srv/data"),
            str(data), "not a synlearner state directory")
    assert not (root / "etc").exists() and oct(data.stat().st_mode & 0o777) == "0o755"
    (root / "srv/file").write_text("")
    refused(cli(capsys, "--root", str(root), "--user", "svc", "--state-dir", "/srv/file"),
            "not a directory")
    (root / "srv/empty").mkdir()
    assert cli(capsys, "--root", str(root), "--user", "svc", "--state-dir", "/srv/empty")[0] == 0
    state = root / "srv/state"
    (state / "adapters").mkdir(parents=True)
    (state / "state.sqlite3").write_text("")
    assert cli(capsys, "--root", str(root), "--user", "svc", "--state-dir", "/srv/state")[0] == 0
    assert (state / "state.sqlite3").exists()  # a reinstall keeps the daemon's state
