"""A lock from an env envbuilder built, without resolving again (`envbuilder lock --from-env`).

What the wheels step must record for this: the lock it installed, written into the env as
<prefix>/.envbuilder/pylock.installed.toml by `record_installed(lock, prefix)` right after
`install_lock` succeeds. That file holds every package's file URL, size and sha256 (hashed from
the bytes envbuilder downloaded), so freezing needs no index, no download and no resolver.
(pip's `--report` alone would not do: its hashes are the index's, which envbuilder does not
trust, and uv has no report at all; `lock_from_pip_report` exists for envs built before this,
and re-downloads each reported URL to hash it.)

`freeze_env` then checks that the env still holds exactly those versions, adds envbuilder's part
from the env's manifest (recipe, sources with submodules, patches, toolchain, archs, torch,
extension keys) and returns the Lock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from envbuilder.context import Layout
from envbuilder.lock.download import DownloadCache
from envbuilder.lock.errors import FreezeError, LockFileError
from envbuilder.lock.indexes import index_of
from envbuilder.lock.install import installed_packages
from envbuilder.lock.model import Artifact, EnvbuilderPart, Lock, LockedPackage
from envbuilder.lock.record import part_from_manifest
from envbuilder.lock.tomlfile import read_lock, write_lock

INSTALLED_LOCK = Path(".envbuilder") / "pylock.installed.toml"
SEEDS = {"pip", "setuptools", "wheel"}  # what `python -m venv` may put in an env by itself


def record_installed(lock: Lock, prefix: Path) -> Path:
    """Called by the wheels step after a successful install: what went into the env."""
    return write_lock(lock, prefix / INSTALLED_LOCK)


def read_manifest(prefix: Path) -> dict[str, Any]:
    layout = Layout(prefix)
    path = layout.existing_manifest()  # today's name, or envbuilder.lock.json of envs built before locks
    if path is None:
        raise FreezeError(
            f"{prefix} has no {layout.manifest.name}: it is not an env envbuilder finished building",
            hint="build it first (`envbuilder build RECIPE --prefix ...`), or lock the recipe instead",
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FreezeError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FreezeError(f"{path}: not an envbuilder manifest")
    return data


def freeze_env(prefix: Path, *, python: Path | None = None) -> Lock:
    prefix = prefix.absolute()
    manifest = read_manifest(prefix)
    recorded = prefix / INSTALLED_LOCK
    if not recorded.is_file():
        raise FreezeError(
            f"{prefix} was built without a record of its files ({INSTALLED_LOCK} is missing)",
            hint="envs built before locks existed cannot be frozen without resolving: "
            f"rebuild it, or run `envbuilder lock {manifest.get('recipe', {}).get('name', 'RECIPE')}`",
        )
    try:
        lock = read_lock(recorded)
    except LockFileError as exc:
        raise FreezeError(f"the env's record of its files is damaged: {exc.message}") from None
    python = python or prefix / "venv" / "bin" / "python"
    have = installed_packages(python)
    built: set[str] = {
        canonicalize_name(str(e.get("name", ""))) for e in manifest.get("extensions", []) if isinstance(e, Mapping)
    }
    built |= {_wheel_project(str(e.get("wheel", ""))) for e in manifest.get("extensions", []) if isinstance(e, Mapping)}
    wrong = [
        f"{p.name}: locked {p.version}, installed {have.get(p.name, 'nothing')}"
        for p in lock.packages
        if have.get(p.name) != p.version
    ]
    extra = [f"{n}=={v}" for n, v in have.items() if lock.package(n) is None and n not in built and n not in SEEDS]
    if wrong or extra:
        raise FreezeError(
            f"{prefix} changed after envbuilder built it: "
            + "; ".join(wrong + [f"{e} installed by hand" for e in extra]),
            hint="a frozen lock must describe the env exactly: rebuild it (`envbuilder build`) or lock the recipe",
        )
    part = part_from_manifest(manifest)
    if lock.envbuilder is not None:
        part = replace(
            part,
            target=lock.envbuilder.target,
            resolution=lock.envbuilder.resolution,
            no_build_isolation=lock.envbuilder.no_build_isolation,
            sdist_env=lock.envbuilder.sdist_env,
        )
    return replace(lock, envbuilder=part)


def _wheel_project(filename: str) -> str:
    name = Path(filename).name
    return canonicalize_name(name.split("-", 1)[0]) if name.endswith(".whl") else ""


def lock_from_pip_report(
    report: Mapping[str, Any],
    *,
    cache: DownloadCache | None = None,
    indexes: tuple[str, ...] = (),
    part: EnvbuilderPart | None = None,
) -> Lock:
    """From pip's installation report (`pip install --report FILE`, format version 1): every
    reported file is fetched once into the cache and hashed; the report's own hashes, which
    come from the index, are not used."""
    cache = cache or DownloadCache()
    if str(report.get("version")) != "1" or not isinstance(report.get("install"), list):
        raise FreezeError("not a pip installation report (version 1)")
    packages = []
    for item in report["install"]:
        try:
            meta, info = item["metadata"], item["download_info"]
            name, version, url = meta["name"], meta["version"], info["url"]
        except (KeyError, TypeError):
            raise FreezeError("a pip report entry lacks metadata.name/version or download_info.url") from None
        if "archive_info" not in info:
            raise FreezeError(f"{name} was installed from a directory or VCS checkout: a lock cannot pin it")
        got = cache.fetch(url)
        filename = url.rsplit("/", 1)[-1].split("#", 1)[0]
        from urllib.parse import unquote

        filename = unquote(filename)
        artifact = Artifact(
            "wheel" if filename.endswith(".whl") else "sdist", filename, got.sha256, got.size, url=url.split("#", 1)[0]
        )
        packages.append(LockedPackage(name, version, artifact, index=index_of(url, indexes)))
    return Lock(tuple(packages), envbuilder=part)
