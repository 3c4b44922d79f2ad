"""`synlearner install-service`: the systemd unit, the config and the state directory.

Writes, under `root` (/ by default; another folder to stage a package or an image):

    etc/systemd/system/synlearner.service   the unit of configs/systemd, run by this
                                            environment's `synlearner` as `user`
    etc/synlearner/config.yaml              configs/default.yaml, unless one is there
    etc/synlearner/synlearner.env           SYNLEARNER__... overrides and secrets (0640),
                                            unless one is there
    var/lib/synlearner/                     the state directory (0750)

It never overwrites a config or an environment file, and prints what systemd still needs
(it does not run systemctl: staging a root and a live host differ there).
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # the unit and configs ship with the checkout
UNIT = "configs/systemd/synlearner.service"
DEFAULT_STATE = Path("/var/lib/synlearner")
ENV_TEMPLATE = """\
# synlearner overrides (SYNLEARNER__SECTION__KEY=value), read by the unit. Keep secrets
# (a broker's SASL password, say) here rather than in config.yaml: this file is 0640.
"""


def render_unit(unit: str, exe: Path, user: str, state_dir: Path) -> str:
    """The repository's unit with this environment's executable, user and state dir."""
    unit = unit.replace("/opt/synlearner/.venv/bin/synlearner", str(exe))
    unit = unit.replace("file:///opt/synlearner/README.md", f"file://{CHECKOUT / 'README.md'}")
    unit = unit.replace("User=synlearner", f"User={user}").replace("Group=synlearner", f"Group={user}")
    if state_dir != DEFAULT_STATE:  # ProtectSystem=strict: the folder must be named writable
        unit = unit.replace(str(DEFAULT_STATE), str(state_dir))
        unit = unit.replace("StateDirectory=synlearner\n", f"ReadWritePaths={state_dir}\n")
    return unit


def install(root: Path, user: str = "synlearner", state_dir: Path = DEFAULT_STATE,
            exe: Path | None = None) -> list[str]:
    """Install into `root`; returns one line per thing done or kept."""
    source = CHECKOUT / UNIT
    if not source.is_file():
        raise FileNotFoundError(f"install-service runs from a checkout (make venv): no {source}")
    exe = exe or Path(sys.prefix) / "bin" / "synlearner"
    done: list[str] = []
    unit = root / "etc/systemd/system/synlearner.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(render_unit(source.read_text(), exe, user, state_dir))
    unit.chmod(0o644)
    done.append(f"wrote {unit}")
    conf = root / "etc/synlearner"
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "synlearner.env"):
        path = conf / name
        if path.exists():
            done.append(f"kept {path}")
            continue
        if name == "config.yaml":
            shutil.copyfile(CHECKOUT / "configs/default.yaml", path)
        else:
            path.write_text(ENV_TEMPLATE)
        path.chmod(0o640)
        done.append(f"wrote {path}")
    state = root / state_dir.relative_to("/")
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o750)
    done.append(f"state directory {state}")
    owner = _user(user)
    if owner is not None and os.geteuid() == 0:
        for path in (state, conf / "config.yaml", conf / "synlearner.env"):
            os.chown(path, 0 if path.parent == conf else owner.pw_uid, owner.pw_gid)
    return done


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def next_steps(root: Path, user: str) -> list[str]:
    steps = []
    if _user(user) is None:
        steps.append(f"useradd --system --home {DEFAULT_STATE} --shell /usr/sbin/nologin {user}")
    unit = root / "etc/systemd/system/synlearner.service"
    steps += [f"systemd-analyze verify {unit}", "systemctl daemon-reload",
              "systemctl enable --now synlearner",
              "systemctl reload synlearner   # after editing config.yaml: SIGHUP"]
    return steps
