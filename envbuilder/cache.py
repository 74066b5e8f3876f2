"""Content hashes that identify what envbuilder builds from, and the content-addressed store of
built extension wheels (<cache>/wheels/<key>/): a second env that needs the same extension with
the same key installs the cached wheel instead of compiling; entries are verified before use."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuilder import fatbin
from envbuilder.errors import EnvbuilderError
from envbuilder.host.compat import Arch

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


# --- built extension wheels, by content ---------------------------------------------------------

ENTRY = "entry.json"
CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# envbuilder's cache: safe to delete.\n"


def wheel_key(inputs: dict[str, Any]) -> str:
    """The identity of a built wheel: everything that can change its bytes (see extensions.py)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def wheel_archs(wheel: Path, archs: tuple[Arch, ...]) -> tuple[dict[str, list[str]], list[str]]:
    """SASS per .so inside a wheel, and what is missing for the requested archs."""
    found, missing = {}, []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not (name.endswith(".so") or ".so." in name):
                continue
            report = fatbin.inspect_bytes(zf.read(name), name)
            found[name] = report.sass
            if report.has_device_code:
                missing += [f"{name}: {a}" for a in archs if report.runs_on(a.major, a.minor, a.suffix) is None]
    return found, missing


@dataclass
class WheelCache:
    root: Path  # <cache>/wheels

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str, archs: tuple[Arch, ...]) -> tuple[Path | None, str]:
        """The cached wheel for key if it is intact (checksum and archs), and why not otherwise.
        A damaged entry is removed so that the caller rebuilds it."""
        entry_dir = self._dir(key)
        try:
            entry = json.loads((entry_dir / ENTRY).read_text())
        except FileNotFoundError:
            return None, "not cached"
        except (OSError, ValueError):
            shutil.rmtree(entry_dir, ignore_errors=True)
            return None, "cache entry unreadable: rebuilt"
        wheel = entry_dir / str(entry.get("wheel", ""))
        try:
            intact = wheel.is_file() and hashlib.sha256(wheel.read_bytes()).hexdigest() == entry.get("sha256")
            _, missing = wheel_archs(wheel, archs) if intact else ({}, [])
        except (OSError, zipfile.BadZipFile, EnvbuilderError):
            intact, missing = False, []
        if not intact or missing:
            shutil.rmtree(entry_dir, ignore_errors=True)
            return (
                None,
                "cache entry damaged (checksum or archs): rebuilt"
                if not missing
                else f"cache entry lacks {missing[0]}: rebuilt",
            )
        return wheel, "cached"

    def store(self, key: str, wheel: Path, inputs: dict[str, Any], archs: tuple[Arch, ...]) -> str:
        """Add a wheel; the entry appears whole (rename) or not at all. Returns a status line."""
        self.root.mkdir(parents=True, exist_ok=True)
        tag = self.root.parent / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(CACHEDIR_TAG)
        final = self._dir(key)
        if final.exists():
            return "already cached"
        final.parent.mkdir(parents=True, exist_ok=True)
        self._sweep(final.parent)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=final.parent))
        try:
            shutil.copyfile(wheel, partial / wheel.name)
            sass, _ = wheel_archs(wheel, archs)
            entry = {
                "wheel": wheel.name,
                "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                "sass": sass,
                "inputs": inputs,
                "created": time.time(),
            }
            (partial / ENTRY).write_text(json.dumps(entry, indent=1))
            partial.rename(final)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return f"not cached: no space left in {self.root} ({exc.strerror}); free space or point ENVBUILDER_CACHE elsewhere"
            raise
        return "cached"

    @staticmethod
    def _sweep(directory: Path) -> None:
        """Remove partial entries of builds killed more than an hour ago."""
        for leftover in directory.glob(".partial-*"):
            try:
                if time.time() - leftover.stat().st_mtime > 3600:
                    shutil.rmtree(leftover, ignore_errors=True)
            except OSError:
                continue
