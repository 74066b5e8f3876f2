"""Is a bundle whole, and is it for this machine? Checked before anything of it is used:
- SHA256SUMS: every file, its sha256; a changed byte names the file, a missing or extra file too;
- bundle.json: the target Python and platform against the interpreter and glibc that will build;
- with --without torch: the base's torch against the one the bundle was locked for."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envbuilder.bundle import BUNDLE_FILE, SCHEMA, SUMS
from envbuilder.errors import EnvbuilderError, InputError

CHUNK = 1 << 20
BUILD_SEEDS = ("pip", "setuptools", "wheel")


class BundleDamaged(EnvbuilderError):
    """A bundle whose files are not what its SHA256SUMS says (exit 1)."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files(root: Path) -> Iterator[Path]:
    """Every file of the bundle but SHA256SUMS itself, in a stable order."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != SUMS and not path.name.endswith(".partial"):
            yield path


def write_sums(root: Path) -> Path:
    lines = [f"{file_sha256(p)}  {p.relative_to(root).as_posix()}" for p in files(root)]
    out = root / SUMS
    out.write_text("\n".join(lines) + "\n")
    return out


def verify(root: Path) -> int:
    """Raise BundleDamaged naming what differs; returns the number of files checked."""
    sums = root / SUMS
    if not (root / BUNDLE_FILE).is_file() or not sums.is_file():
        raise InputError(
            f"{root} is not an envbuilder bundle (no {BUNDLE_FILE} or {SUMS})",
            hint="make one with `envbuilder bundle RECIPE --locked pylock.RECIPE.toml --output DIR`; "
            "parts of a --split bundle are joined with `envbuilder bundle join`",
        )
    expected: dict[str, str] = {}
    for number, line in enumerate(sums.read_text().splitlines(), 1):
        found = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
        if not found:
            raise BundleDamaged(f"{sums}:{number}: not a sha256sum line: {line!r}")
        expected[found.group(2)] = found.group(1)
    present = {p.relative_to(root).as_posix(): p for p in files(root)}
    missing = sorted(set(expected) - set(present))
    if missing:
        raise BundleDamaged(f"{root}: {len(missing)} file(s) of the bundle are missing: {', '.join(missing[:5])}")
    extra = sorted(set(present) - set(expected))
    if extra:
        raise BundleDamaged(
            f"{root}: file(s) not in {SUMS}: {', '.join(extra[:5])}", hint="remove them, or make the bundle again"
        )
    for name, want in expected.items():
        got = file_sha256(present[name])
        if got != want:
            raise BundleDamaged(
                f"{root}: {name} is damaged: sha256 expected {want}, got {got}",
                hint="copy the bundle again (or that file): its bytes changed on the way",
            )
    return len(expected)


def read_manifest(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / BUNDLE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{root / BUNDLE_FILE}: not readable ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(
            f"{root / BUNDLE_FILE}: a bundle of another envbuilder version (schema {data.get('schema') if isinstance(data, dict) else '?'})"
        )
    return data


def target_problem(data: dict[str, Any], python: Version, glibc: str | None, machine: str) -> str | None:
    """Why this machine cannot use the bundle's wheels, or None."""
    target = data.get("target") or {}
    wanted = str(target.get("python", ""))
    if wanted and f"{python.major}.{python.minor}" != wanted:
        return f"the bundle is for Python {wanted}; the build would use Python {python}"
    platform = str(target.get("platform", ""))
    found = re.fullmatch(r"(x86_64|aarch64)-manylinux_(\d+)_(\d+)", platform)
    if found:
        arch = "aarch64" if machine in ("arm64", "aarch64") else machine
        if found.group(1) != arch:
            return f"the bundle is for {found.group(1)} ({platform}); this machine is {machine}"
        need = (int(found.group(2)), int(found.group(3)))
        have = tuple(int(x) for x in (glibc or "0.0").split(".")[:2])
        if have < need:
            return f"the bundle is for glibc >= {need[0]}.{need[1]} ({platform}); this machine has glibc {glibc}"
    return None


def base_problem(provided: dict[str, str], found: dict[str, str]) -> str | None:
    """A bundle made for a base (--without torch, --base FREEZE) left these packages out: the env
    must see each at its version (torch by its release: 2.11.0 is 2.11.0+cu130). `found` is
    name -> version of what the env sees."""
    from packaging.utils import canonicalize_name

    have = {canonicalize_name(k): v for k, v in found.items()}
    wrong = []
    for name, want in sorted(provided.items()):
        got = have.get(canonicalize_name(name))
        if name in BUILD_SEEDS and got is not None:
            continue  # build tools a venv may shadow with its own; extensions come prebuilt
        if got is None:
            wrong.append(f"{name} {want} (not there)")
        elif not _same(got, want):
            wrong.append(f"{name} {want} (found {got})")
    if not wrong:
        return None
    return (
        f"the bundle was made for a base that provides {len(provided)} packages; this env lacks: {'; '.join(wrong[:6])}"
    )


def _same(got: str, want: str) -> bool:
    try:
        return Version(got).public == Version(want).public
    except InvalidVersion:
        return got == want
