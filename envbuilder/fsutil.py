"""Writing files so that a reader never sees half of one: write a temporary file beside the
target, flush it to disk, then rename it over the target (atomic on POSIX)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace path with data, all or nothing; the file keeps its mode (or gets `mode`, else 0644)."""
    payload = data.encode() if isinstance(data, str) else data
    if mode is None:
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_atomic(source: Path, dest: Path) -> None:
    """Copy source to dest, all or nothing (streamed: assets can be gigabytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, *, indent: int | None = 2) -> None:
    write_atomic(path, json.dumps(data, indent=indent, default=str) + "\n")
