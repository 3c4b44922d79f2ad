"""`synlearner install-service`: the systemd unit, the config and the state directory.

Writes, under `root` (/ by default; another folder to stage a package or an image):

    etc/systemd/system/synlearner.service   the unit of configs/systemd, run by this
                                            environment's `synlearner` as `user`
    etc/synlearner/config.yaml              configs/default.yaml, unless one is there
    etc/synlearner/synlearner.env           SYNLEARNER__... overrides and secrets (0640),
                                            unless one is there
    var/lib/synlearner/                     the state directory (0750)

It never overwrites a config or an environment file, never writes through a symlink below
`root`, and prints what is still to do as root, in order (it does not run useradd or
systemctl: staging a root and a live host differ there). Input that would give a unit or
files the service cannot use (a user that does not exist on the live root, a state
directory that is relative or holds what a unit would split or expand) is refused with an
`InstallError` before anything is written, and so is a state directory it must not take
over: it is made 0750 (and, as root, given to the service user), so a system folder (/,
/etc and below, /usr, /run, ...), a folder shared by many programs (/var/lib) or an
existing folder that holds anything but a synlearner state directory is never one.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # the unit and configs ship with the checkout
UNIT = "configs/systemd/synlearner.service"
DEFAULT_STATE = Path("/var/lib/synlearner")
ENV_TEMPLATE = """\
# synlearner overrides (SYNLEARNER__SECTION__KEY=value), read by the unit. Keep secrets
# (a broker's SASL password, say) here rather than in config.yaml: this file is 0640.
"""
# what a path may hold to go into the unit as it is: no whitespace (systemd splits lists
# such as ReadWritePaths= on it), no quotes, backslashes or `%` specifiers
_UNIT_PATH = re.compile(r"/[A-Za-z0-9._@+/-]*")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}")  # a user name, nothing a unit would split
# trees no state directory may be in: the system's programs and configuration (the service
# must not write its own config), the kernel's and the runtime's folders, root's home, and
# /tmp and /var/tmp (lost at boot, and private to the unit: PrivateTmp=yes); /lib* as well
SYSTEM_TREES = tuple(Path(p) for p in (
    "/etc", "/usr", "/bin", "/sbin", "/boot", "/proc", "/sys", "/dev", "/run", "/var/run",
    "/var/lock", "/root", "/tmp", "/var/tmp"))
# folders where many programs keep their own: a state directory goes below them, is never one
SHARED = frozenset(Path(p) for p in (
    "/var/lib", "/var/cache", "/var/log", "/var/spool", "/var/opt", "/var/local", "/var/mail",
    "/var/backups"))
STATE_MARKS = ("state.sqlite3", "adapters", "spool")  # what only a synlearner state dir holds


class InstallError(ValueError):
    """Bad input to `install-service`: one line that says what is wrong and what to do."""


def useradd(user: str, state_dir: Path = DEFAULT_STATE) -> str:
    return f"useradd --system --home {state_dir} --shell /usr/sbin/nologin {user}"


def check(root: Path, user: str, state_dir: Path, exe: Path) -> None:
    """Refuse, with an `InstallError`, what would make a unit or files the service cannot use."""
    if not _USER.fullmatch(user):
        raise InstallError(f"--user {user!r}: not a user name (letters, digits, '._-', "
                           "at most 32)")
    state_dir = state_path(state_dir)
    _check_state_dir(root, state_dir)
    if not _UNIT_PATH.fullmatch(str(exe)):
        raise InstallError(f"the synlearner executable {str(exe)!r} has characters a systemd "
                           "unit cannot take as they are; install from a path without them")
    if _user(user) is None and root.resolve() == Path("/"):
        raise InstallError(f"user {user!r} does not exist, and the files must belong to it; "
                           f"create it first: {useradd(user, state_dir)}")


def state_path(state_dir: Path) -> Path:
    """`state_dir` as the unit names it: absolute, one '/' between parts (`//srv/x`, which
    POSIX lets a system read otherwise, is /srv/x); `InstallError` if relative, with '..'
    or with what a unit would split or expand."""
    if not state_dir.is_absolute():
        raise InstallError(f"--state-dir {str(state_dir)!r}: must be an absolute path")
    if ".." in state_dir.parts or not _UNIT_PATH.fullmatch(str(state_dir)):
        raise InstallError(f"--state-dir {str(state_dir)!r}: only letters, digits and "
                           "'._@+-/' can go into a systemd unit as they are (no spaces, no '..')")
    return Path("/", *state_dir.parts[1:])


def _check_state_dir(root: Path, state_dir: Path) -> None:
    """Refuse a (normalised) state directory that install would take from others: it is
    made 0750 and, as root, given to the service user."""
    name = f"--state-dir {str(state_dir)!r}"
    top = state_dir.parts[1] if len(state_dir.parts) > 1 else ""
    tree = next((t for t in SYSTEM_TREES if state_dir.is_relative_to(t)), None)
    if tree is not None or top.startswith("lib"):
        raise InstallError(f"{name}: in the system tree {tree or '/' + top}, which the "
                           "service must not own; use a folder of its own such as "
                           f"{DEFAULT_STATE} or /srv/synlearner")
    if len(state_dir.parts) < 3:
        raise InstallError(f"{name}: / and the folders right in it are the whole system's; "
                           "name one of synlearner's own at least two levels deep, such as "
                           f"{DEFAULT_STATE} or /srv/synlearner")
    if state_dir in SHARED:
        raise InstallError(f"{name}: a folder where many programs keep theirs; name one of "
                           f"synlearner's own in it, such as {state_dir / 'synlearner'}")
    path = root / state_dir.relative_to("/")
    if path.is_symlink() or not os.path.lexists(path):
        return  # a symlink is refused where it would be written through (`_inside`)
    if not path.is_dir():
        raise InstallError(f"{name}: {path} exists and is not a directory")
    if any(path.iterdir()) and not any(os.path.lexists(path / m) for m in STATE_MARKS):
        raise InstallError(f"{name}: {path} holds files and is not a synlearner state "
                           f"directory (no {', '.join(STATE_MARKS)}); name a new or empty folder")


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
    """Install into `root`; returns one line per thing done or kept. Raises `InstallError`
    on bad input (see `check`) and on a symlink where it would write."""
    source = CHECKOUT / UNIT
    if not source.is_file():
        raise FileNotFoundError(f"install-service runs from a checkout (make venv): no {source}")
    exe = exe or Path(sys.prefix) / "bin" / "synlearner"
    check(root, user, state_dir, exe)
    state_dir = state_path(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    unit = _inside(root, "etc/systemd/system/synlearner.service")
    _write(unit, render_unit(source.read_text(), exe, user, state_dir).encode(), 0o644)
    done.append(f"wrote {unit}")
    conf = _inside(root, "etc/synlearner")
    for name in ("config.yaml", "synlearner.env"):
        path = _inside(root, f"etc/synlearner/{name}")
        if os.path.lexists(path):
            done.append(f"kept {path}")
            continue
        body = (CHECKOUT / "configs/default.yaml").read_bytes() if name == "config.yaml" \
            else ENV_TEMPLATE.encode()
        _write(path, body, 0o640)
        done.append(f"wrote {path}")
    state = _inside(root, str(state_dir.relative_to("/")))
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o750)
    done.append(f"state directory {state}")
    if _owns(user):
        owner = pwd.getpwnam(user)
        for path in (state, conf / "config.yaml", conf / "synlearner.env"):
            os.chown(path, 0 if path.parent == conf else owner.pw_uid, owner.pw_gid,
                     follow_symlinks=False)
    return done


def _inside(root: Path, relative: str) -> Path:
    """`root/relative`, refused when a part of it below `root` is a symlink (a write would go
    wherever the link points); the folders above the last part are created."""
    path = root
    parts = Path(relative).parts
    for i, part in enumerate(parts):
        path = path / part
        if path.is_symlink():
            raise InstallError(f"{path} is a symlink; refusing to write through it "
                               "(remove it, or install under another --root)")
        if i < len(parts) - 1:
            path.mkdir(exist_ok=True)
    return path


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create or replace the regular file `path` (never following a symlink)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with os.fdopen(os.open(path, flags, mode), "wb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise InstallError(f"{path} is not a regular file; refusing to write it")
        fh.truncate()
        fh.write(data)
        os.fchmod(fh.fileno(), mode)


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _owns(user: str) -> bool:
    """Whether `install` gives the state dir and the config files to `user` itself."""
    return _user(user) is not None and os.geteuid() == 0


def next_steps(root: Path, user: str, state_dir: Path = DEFAULT_STATE) -> list[str]:
    """What is left to do as root on the host, in order: the user before the files are
    given to it, the files before the service starts."""
    state_dir = state_path(state_dir)
    steps = []
    if _user(user) is None:
        steps.append(useradd(user, state_dir))
    if not _owns(user):
        steps += [f"chown {user}:{user} {state_dir}",
                  f"chown root:{user} /etc/synlearner/config.yaml /etc/synlearner/synlearner.env"]
    unit = root / "etc/systemd/system/synlearner.service"
    steps += [f"systemd-analyze verify {unit}", "systemctl daemon-reload",
              "systemctl enable --now synlearner",
              "systemctl reload synlearner   # after editing config.yaml: SIGHUP"]
    return steps
