"""Durable file writes, shared by every package: atomic files, fsync, directory swaps.

A write either leaves the old content or the new, whatever point a crash hits: data goes
to a temporary name beside the target, is fsynced, renamed over the target, and the
directory is fsynced so the rename itself survives a power cut. This module imports
nothing but the standard library, so the lowest layers (stream, memory) may use it.

A file name derived from one a producer chose (a spool message's error record, a temporary
file beside it) goes through `fit_name`, so it never exceeds what the file system takes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, tmpfs)


def fit_name(stem: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """`stem + suffix` when it takes at most `limit` bytes; else a prefix of `stem`, `~`, 16
    hex digits of a hash of `stem + suffix`, and `suffix`: `limit` bytes at most.

    The same name always gives the same result, so a name derived from another can be
    computed again from it. Different names give different results but for a hash collision
    (FNV-1a, 64 bits: this module stays on a few standard modules), so a caller that must
    never overwrite checks that the name is free, as `spool.unique_path` does.
    """
    raw = os.fsencode(stem + suffix)
    if len(raw) <= limit:
        return stem + suffix
    head, tail = os.fsencode(stem), os.fsencode(suffix)
    tag = f"~{_fnv1a(raw):016x}".encode()
    keep = limit - len(tag) - len(tail)
    if keep < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room in a {limit}-byte name")
    while keep > 1 and head[keep] & 0xC0 == 0x80:  # never cut a UTF-8 character in half
        keep -= 1
    return os.fsdecode(head[:keep] + tag + tail)


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with Path(path).open("rb") as fh:
        os.fsync(fh.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new file."""
    write_with(path, lambda tmp: tmp.write_bytes(data))


def write_with(path: Path, write: Callable[[Path], object]) -> None:
    """Let `write(tmp)` produce the file at a temporary path, then put it in place."""
    path = Path(path)
    tmp = path.with_name(fit_name(f".{path.name}", ".tmp"))
    write(tmp)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def recover_dir(path: Path) -> bool:
    """Finish a `replace_dir` cut short between its two renames (the folder moved aside, its
    replacement not yet in place): put the folder back. Returns whether it did."""
    old = path.with_name(fit_name(f".{path.name}", ".old"))
    if path.exists() or not old.is_dir():
        return False
    os.replace(old, path)
    fsync_dir(path.parent)
    return True


def replace_dir(path: Path, fill: Callable[[Path], object]) -> None:
    """Let `fill(tmp_dir)` write a folder's files, then swap it in for `path` (fsynced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=fit_name(f".{path.name}.", limit=NAME_MAX - 8), dir=path.parent))
    try:
        fill(tmp)
        for f in tmp.iterdir():
            if f.is_file():
                fsync_file(f)
        fsync_dir(tmp)
        old = path.with_name(fit_name(f".{path.name}", ".old"))
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
