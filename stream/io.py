"""Durable file writes, shared by every package: atomic files, fsync, directory swaps.

A write either leaves the old content or the new, whatever point a crash hits: data goes
to a temporary name beside the target, is fsynced, renamed over the target, and the
directory is fsynced so the rename itself survives a power cut. This module imports
nothing but the standard library, so the lowest layers (stream, memory) may use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


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
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def recover_dir(path: Path) -> bool:
    """Finish a `replace_dir` cut short between its two renames (the folder moved aside, its
    replacement not yet in place): put the folder back. Returns whether it did."""
    old = path.with_name(f".{path.name}.old")
    if path.exists() or not old.is_dir():
        return False
    os.replace(old, path)
    fsync_dir(path.parent)
    return True


def replace_dir(path: Path, fill: Callable[[Path], object]) -> None:
    """Let `fill(tmp_dir)` write a folder's files, then swap it in for `path` (fsynced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        for f in tmp.iterdir():
            if f.is_file():
                fsync_file(f)
        fsync_dir(tmp)
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
