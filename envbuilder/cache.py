"""Content hashes that identify what envbuilder builds from, and the content-addressed store of
built extension wheels (<cache>/wheels/<key>/): a second env that needs the same extension with
the same key installs the cached wheel instead of compiling; entries are verified before use.

An entry is <cache>/wheels/<key[:2]>/<key>/ holding the wheel, entry.json (its sha256, SASS per
.so, the key's inputs, and who uses it: recipes, source, origin) and last-use (its mtime is the
last hit, for `cache gc`). <cache>/wheels/.locks/<key>.lock is the flock that `claim` takes, so
that two builds on one machine never compile one key twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuilder import fatbin
from envbuilder.errors import EnvbuilderError, InputError
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
LAST_USE = "last-use"
LOCKS = ".locks"
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

    def lookup(self, key: str, archs: tuple[Arch, ...], *, recipe: str | None = None) -> tuple[Path | None, str]:
        """The cached wheel for key if it is intact (checksum and archs), and why not otherwise.
        A damaged entry is removed so that the caller rebuilds it. A hit records its time (and
        the recipe that asked, if given)."""
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
        _touch(entry_dir / LAST_USE)
        if recipe and recipe not in entry.get("recipes", []):
            entry["recipes"] = sorted({*entry.get("recipes", []), recipe})
            _rewrite(entry_dir / ENTRY, entry)
        return wheel, "cached"

    def store(
        self,
        key: str,
        wheel: Path,
        inputs: dict[str, Any],
        archs: tuple[Arch, ...],
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Add a wheel; the entry appears whole (rename) or not at all. Returns a status line.
        metadata (optional) says who uses it: {"recipe" or "recipes", "source": {url, commit,
        path}, "origin": where it came from}; `cache push RECIPE` selects entries by it."""
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
            meta = metadata or {}
            recipes = sorted({*meta.get("recipes", ()), *([meta["recipe"]] if meta.get("recipe") else [])})
            entry = {
                "wheel": wheel.name,
                "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                "sass": sass,
                "inputs": inputs,
                "created": time.time(),
                "recipes": recipes,
                "source": meta.get("source"),
                "origin": meta.get("origin", "built here"),
            }
            (partial / ENTRY).write_text(json.dumps(entry, indent=1))
            (partial / LAST_USE).touch()
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

    # --- per-key lock, listing, garbage collection ----------------------------------------

    @contextmanager
    def claim(self, key: str) -> Iterator[Claim]:
        """Hold key's lock: one process compiles a missing key, the others wait here and then
        find it cached. flock is dropped by the kernel when a holder dies, so a killed build
        never leaves a stale lock. Not reentrant: take it once per key per process.

            with store.claim(key) as claim:
                wheel, why = store.lookup(key, archs)
                if wheel is None:
                    ... compile, then store.store(key, ...)
        """
        fd = self._lock_fd(key)
        started = time.monotonic()
        waited = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield Claim(key, waited, round(time.monotonic() - started, 2))
        finally:
            os.close(fd)

    def _lock_fd(self, key: str) -> int:
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise ValueError(f"not a content key: {key!r}")
        locks = self.root / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        return os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def entries(self) -> list[CacheEntry]:
        """Every readable entry, least recently used first."""
        found = []
        for entry_json in sorted(self.root.glob(f"??/*/{ENTRY}")):
            entry_dir = entry_json.parent
            if entry_dir.name.startswith("."):
                continue
            try:
                data = json.loads(entry_json.read_text())
                wheel = entry_dir / str(data["wheel"])
                size = sum(p.stat().st_size for p in entry_dir.iterdir() if p.is_file())
                created = float(data.get("created", entry_json.stat().st_mtime))
                try:
                    last_use = (entry_dir / LAST_USE).stat().st_mtime
                except FileNotFoundError:
                    last_use = created
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a damaged entry: lookup removes it when a build asks for it
            inputs = data.get("inputs") or {}
            found.append(
                CacheEntry(
                    key=entry_dir.name,
                    extension=str(inputs.get("extension", "")),
                    archs=str(inputs.get("archs", "")),
                    size=size,
                    last_use=last_use,
                    created=created,
                    wheel=wheel,
                    sha256=str(data.get("sha256", "")),
                    recipes=list(data.get("recipes") or []),
                    source=data.get("source"),
                    origin=data.get("origin"),
                    inputs=inputs,
                )
            )
        return sorted(found, key=lambda e: (e.last_use, e.key))

    def gc(self, max_size: int) -> tuple[list[CacheEntry], int]:
        """Remove least recently used entries until the cache holds at most max_size bytes.
        Entries that a build holds (claim) are skipped. Returns (removed, bytes kept)."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for e in entries:
            if total <= max_size:
                break
            fd = self._lock_fd(e.key)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use by a build right now
                entry_dir = self._dir(e.key)
                doomed = entry_dir.with_name(f".partial-gc-{e.key}")
                try:
                    entry_dir.rename(doomed)  # a lookup sees the whole entry or none of it
                except FileNotFoundError:
                    continue
                shutil.rmtree(doomed, ignore_errors=True)
            finally:
                os.close(fd)
            total -= e.size
            removed.append(e)
        return removed, total


@dataclass(frozen=True)
class Claim:
    key: str
    waited: bool  # another process held the key (it was compiling or fetching it)
    seconds: float


@dataclass
class CacheEntry:
    key: str
    extension: str
    archs: str
    size: int  # bytes on disk (wheel and metadata)
    last_use: float  # epoch seconds of the last hit (or of the store)
    created: float
    wheel: Path
    sha256: str
    recipes: list[str] = field(default_factory=list)
    source: dict[str, Any] | None = None
    origin: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """What remote.publish wants."""
        return {"inputs": self.inputs, "sha256": self.sha256, "recipes": self.recipes, "source": self.source}

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "extension": self.extension,
            "archs": self.archs,
            "size": self.size,
            "last_use": self.last_use,
            "created": self.created,
            "wheel": str(self.wheel),
            "sha256": self.sha256,
            "recipes": self.recipes,
            "source": self.source,
            "origin": self.origin,
            "torch": self.inputs.get("torch"),
            "python": self.inputs.get("python"),
        }


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """'500M', '10G', '1.5GiB', '123' (bytes); K/M/G/T are powers of 1024."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m:
        raise InputError(f"not a size: {text!r}", hint="give bytes or a number with K, M, G or T, e.g. 20G")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves hits
        path.touch()


def _rewrite(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
