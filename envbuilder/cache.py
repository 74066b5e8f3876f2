"""Content hashes that identify what envbuilder builds from (and, later, its content-addressed store)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

# Build artefacts that never count as source (a stale build/ must not change a source's identity).
IGNORED = ("build", "dist", "*.egg-info", "__pycache__", ".git", "*.so", "*.o")


def tree_digest(root: Path) -> str:
    """sha256 over the relative paths and bytes of every file a path source would copy."""
    h = hashlib.sha256()
    ignore = shutil.ignore_patterns(*IGNORED)
    for dirpath, dirnames, filenames in os.walk(root):
        skipped = ignore(dirpath, dirnames + filenames)
        dirnames[:] = sorted(d for d in dirnames if d not in skipped)
        for name in sorted(f for f in filenames if f not in skipped):
            path = Path(dirpath, name)
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(path.read_bytes() if not path.is_symlink() else os.readlink(path).encode())
            h.update(b"\0")
    return h.hexdigest()
