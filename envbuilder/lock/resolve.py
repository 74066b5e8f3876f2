"""Resolve a recipe's wheels without installing anything: the wheels step's planned inputs
(torch family + index, requirements, build tools, no-build-isolation sdists) and a target
(Python, platform) -> a Lock whose every file was downloaded once into the cache and hashed.

How, and why this way (research/locks.md; measured, see benchmarks/bench_lock.py):
- uv resolves (`uv pip compile --format pylock.toml --python-version --python-platform`): it
  resolves for a target that is not the host, its platform triples cover manylinux tag ranges
  (pip's --platform takes exact tags only: `pip install --dry-run --platform manylinux_2_28_x86_64`
  found no nvidia-cudnn-cu13 wheel, which is tagged manylinux_2_27), and a warm resolution of the
  canary's 30 packages takes about a second. uv reads no pip config: every index is passed here.
- the torch index serves the torch family only. Pass A resolves the recipe's torch packages
  with the torch index first (`--index-strategy first-index`); only those packages are kept.
  Pass B resolves everything with the torch family pinned to pass A's exact wheels by URL and
  the torch index left out, so numpy, pillow, nvidia-* and triton come from the regular indexes
  (the PyTorch index hosts copies of common packages that break other pythons, §2.3).
  Among the regular indexes pip's rule holds (`unsafe-best-match`: the best version anywhere),
  which is what an unlocked pip build on the same machine picks.
- wheels only, where the target has one (`--only-binary :all:`). A requirement with no wheel
  for the target (chumpy, python_speech_features, iopath) is pinned as its sdist, with the sdist's
  own sha256 and size: the sdist is the one artifact every machine can fetch and check, while a
  wheel built here would be this machine's bytes. It is found by uv's own answer ("Wheels are
  required for `X`"), allowed (`--no-binary X`) and resolved again. The recipe's no-build-isolation
  requirements are allowed from the start; their metadata is prepared with what the env holds
  when the wheels step installs them, pip and the extensions' build tools (chumpy's setup.py
  imports pip; uv `extra-build-dependencies`). The lock
  lists them in [tool.envbuilder] no-build-isolation: the installer builds them against the env.
- `previous` (an earlier lock) is uv's preference: versions stay unless `upgrade` names them.
  It is written as uv's existing `-o` output, and its files are also given to uv as a flat
  `--find-links` page (pass B). uv 0.13.9 takes a preferred version from the first index that
  lists it, compatible or not (its other selections skip to the next index): a mirror listed
  first with scipy 1.13.1 for cp311 only then made a cp312 relock fail ("no wheels with a
  matching Python ABI tag"), or an unpinned package move to its newest release. uv merges
  find-links files into every index's listing of the package, so the file the lock chose is
  there wherever uv looks for the preferred version.
"""

from __future__ import annotations

import html
import json
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envbuilder import proc
from envbuilder.errors import CommandFailed, InputError
from envbuilder.lock.download import DownloadCache
from envbuilder.lock.errors import ResolutionFailed
from envbuilder.lock.indexes import IndexConfig, index_of
from envbuilder.lock.model import Artifact, EnvbuilderPart, Lock, LockedPackage, Resolution
from envbuilder.lock.target import Target
from envbuilder.lock.tomlfile import dumps
from envbuilder.lock.tools import Tools, clean_env
from envbuilder.paths import cache_dir
from envbuilder.recipe.model import SdistEnv

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

MAX_SDIST_ROUNDS = 10
_NEEDS_SDIST = re.compile(r"Wheels are required for `([^`]+)`")


@dataclass(frozen=True)
class Request:
    """What to lock: the wheels step's inputs, and the target."""

    torch: tuple[str, ...] = ()
    torch_index: str | None = None
    requirements: tuple[str, ...] = ()
    no_build_isolation: tuple[str, ...] = ()
    build_requires: tuple[str, ...] = ()
    sdist_env: SdistEnv = ()  # name -> variables for its build
    target: Target = field(default_factory=lambda: Target("3.12", "x86_64-manylinux_2_28"))

    @classmethod
    def from_wheels_inputs(cls, inputs: Mapping[str, Any], target: Target) -> Request:
        """From `plan.step("wheels").inputs` (keys torch, index, requirements,
        no_build_isolation, build_requires, cuda_major)."""
        return cls(
            torch=tuple(inputs.get("torch") or ()),
            torch_index=inputs.get("index"),
            requirements=tuple(inputs.get("requirements") or ()),
            no_build_isolation=tuple(inputs.get("no_build_isolation") or ()),
            build_requires=tuple(inputs.get("build_requires") or ()),
            sdist_env=tuple((name, tuple(map(tuple, env))) for name, env in inputs.get("sdist_env") or ()),
            target=target,
        )

    def all_requirements(self) -> list[str]:
        return list(dict.fromkeys([*self.torch, *self.requirements, *self.build_requires, *self.no_build_isolation]))

    def torch_names(self) -> list[str]:
        return [_name(r) for r in self.torch]

    def no_isolation_names(self) -> list[str]:
        return [_name(r) for r in self.no_build_isolation]


def _name(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement as exc:
        raise InputError(f"requirement {requirement!r} is not valid: {exc}") from None


@dataclass(frozen=True)
class _Choice:
    name: str
    version: str
    url: str
    kind: str  # wheel | sdist
    filename: str
    upload_time: Any = None


class Resolver:
    def __init__(
        self,
        tools: Tools,
        indexes: IndexConfig,
        *,
        cache: DownloadCache | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.tools = tools
        self.indexes = indexes
        self.cache = cache or DownloadCache(on_note=on_note)
        self.on_note = on_note or (lambda _text: None)

    def resolve(
        self,
        request: Request,
        *,
        previous: Lock | None = None,
        upgrade: Sequence[str] = (),
        part: EnvbuilderPart | None = None,
    ) -> Lock:
        with tempfile.TemporaryDirectory(prefix="envbuilder-lock-") as tmp:
            work = Path(tmp)
            torch_choices: dict[str, _Choice] = {}
            if request.torch_index and request.torch:
                self.on_note(f"resolving {' '.join(request.torch)} on {request.torch_index}")
                found = self._compile(
                    work / "a", list(request.torch), request, previous, upgrade, torch_index=request.torch_index
                )
                for name in request.torch_names():
                    if name not in found:
                        raise ResolutionFailed(f"{name} was not resolved from {request.torch_index}")
                    torch_choices[name] = found[name]
            pinned = [f"{c.name} @ {c.url}" for c in torch_choices.values()]
            rest = [r for r in request.all_requirements() if not (torch_choices and r in request.torch)]
            self.on_note(
                f"resolving {len(pinned) + len(rest)} requirements for Python {request.target.python} on {request.target.platform}"
            )
            found = self._compile(work / "b", pinned + rest, request, previous, upgrade, torch_index=None)
            found.update(torch_choices)
            packages = [self._lock_package(c, request) for c in sorted(found.values(), key=lambda c: c.name)]
        part = part or EnvbuilderPart()
        resolution = Resolution(
            resolver="uv",
            resolver_version=str(self.tools.uv_version),
            indexes=self.indexes.all_indexes(),
            torch_index=request.torch_index,
            find_links=self.indexes.find_links,
            constraints=tuple(str(c) for c in self.indexes.constraints),
            site_config=self.indexes.site_config,
            index_strategy="unsafe-best-match"
            + (" (torch index: first-index, torch family only)" if request.torch_index else ""),
            requirements=tuple(request.all_requirements()),
        )
        sdists = {p.name for p in packages if p.artifact.kind == "sdist"}
        part = replace(
            part,
            target=request.target,
            resolution=resolution,
            no_build_isolation=tuple(n for n in request.no_isolation_names() if n in sdists) or part.no_build_isolation,
            sdist_env={n: dict(env) for n, env in request.sdist_env if n in sdists} or part.sdist_env,
        )
        return Lock(
            tuple(packages),
            envbuilder=part,
            requires_python=f"=={request.target.python}.*",
            environments=(request.target.marker(),),
        )

    # --- one uv run (with rounds for sdist-only requirements) ----------------------------------

    def _compile(
        self,
        work: Path,
        requirements: list[str],
        request: Request,
        previous: Lock | None,
        upgrade: Sequence[str],
        *,
        torch_index: str | None,
    ) -> dict[str, _Choice]:
        work.mkdir(parents=True)
        (work / "requirements.in").write_text("\n".join(requirements) + "\n")
        out = work / "pylock.resolved.toml"
        allowed_sdists = list(request.no_isolation_names())
        build_env = json.dumps(["pip", *request.build_requires])  # a JSON array is a TOML array
        config = work / "uv.toml"
        config.write_text("[extra-build-dependencies]\n" + "".join(f'"{n}" = {build_env}\n' for n in allowed_sdists))
        previous_files: list[str] = []
        if previous is not None and torch_index is None:
            page = work / "previous-files.html"
            page.write_text(_links_page(previous, upgrade))
            previous_files = ["--find-links", str(page)]
        for _round in range(MAX_SDIST_ROUNDS):
            if previous is not None:
                out.write_text(dumps(previous))  # uv keeps the versions an existing output pins
            else:
                out.unlink(missing_ok=True)
            argv = [
                self.tools.uv,
                "pip",
                "compile",
                str(work / "requirements.in"),
                "--no-config",
                "--config-file",
                str(config),
                "--format",
                "pylock.toml",
                "-o",
                str(out),
                "--quiet",
                "--no-header",
                "--python-version",
                request.target.python,
                "--python-platform",
                request.target.platform,
                "--only-binary",
                ":all:",
                "--cache-dir",
                str(cache_dir() / "uv"),
                *[a for n in allowed_sdists for a in ("--no-binary", n)],
                *[a for n in upgrade for a in ("--upgrade-package", n)],
                *self._index_args(torch_index),
                *previous_files,
            ]
            try:
                proc.capture(argv, env=clean_env(), timeout=1800)
            except CommandFailed as exc:
                needs = [canonicalize_name(n) for n in _NEEDS_SDIST.findall(exc.tail)]
                new = [n for n in needs if n not in allowed_sdists]
                if not new:
                    raise ResolutionFailed(
                        "uv found no set of packages for the requirements",
                        tail=_trim(exc.tail),
                        hint="relax the pin it names, or check that the indexes hold it for "
                        f"Python {request.target.python} on {request.target.platform}",
                    ) from None
                self.on_note(f"no wheel of {', '.join(new)} for the target: locking the sdist")
                allowed_sdists += new
                continue
            found = self._choices(out, request.target)
            if previous is not None:  # a file uv took from the previous lock's page has no upload time
                uploaded = {p.artifact.url: p.artifact.upload_time for p in previous.packages if p.artifact.upload_time}
                found = {
                    n: c if c.upload_time or c.url not in uploaded else replace(c, upload_time=uploaded[c.url])
                    for n, c in found.items()
                }
            return found
        raise ResolutionFailed(f"gave up after {MAX_SDIST_ROUNDS} rounds of sdist-only requirements: {allowed_sdists}")

    def _index_args(self, torch_index: str | None) -> list[str]:
        cfg = self.indexes
        args: list[str] = []
        if torch_index:
            # pass A: the torch index first, then the default; only the torch family is kept
            args += ["--index", torch_index, "--default-index", cfg.default, "--index-strategy", "first-index"]
            return args
        for extra in cfg.extra:
            args += ["--index", extra]
        args += ["--default-index", cfg.default, "--index-strategy", "unsafe-best-match"]
        for links in cfg.find_links:
            args += ["--find-links", links]
        for constraint in cfg.constraints:
            args += ["--constraint", str(constraint)]
        return args

    def _choices(self, out: Path, target: Target) -> dict[str, _Choice]:
        data = tomllib.loads(out.read_text())
        found: dict[str, _Choice] = {}
        for package in data.get("packages", []):
            name = canonicalize_name(package["name"])
            version = str(package.get("version", ""))
            ranked = []
            for wheel in package.get("wheels", []):
                url = wheel.get("url") or _file_url(wheel.get("path"))
                filename = wheel.get("name") or url.rsplit("/", 1)[-1]
                from urllib.parse import unquote

                filename = unquote(filename)
                rank = target.wheel_rank(filename)
                if rank is not None:
                    ranked.append((rank, filename, url, wheel.get("upload-time")))
            if ranked:
                # a file both an index and the previous lock's page list appears twice: the
                # index's entry, which has the upload time, wins
                _rank, filename, url, uploaded = min(ranked, key=lambda r: (r[0], r[1], r[2], r[3] is None))
                found[name] = _Choice(name, version, url, "wheel", filename, uploaded)
                continue
            archive = package.get("archive")
            if archive and archive.get("url"):  # a direct URL (the pinned torch family): kept from pass A
                url = archive["url"]
                found[name] = _Choice(name, version, url, "wheel", url.rsplit("/", 1)[-1])
                continue
            sdist = package.get("sdist")
            if sdist and (sdist.get("url") or sdist.get("path")):
                url = sdist.get("url") or _file_url(sdist["path"])
                from urllib.parse import unquote

                found[name] = _Choice(
                    name, version, url, "sdist", unquote(url.rsplit("/", 1)[-1]), sdist.get("upload-time")
                )
                continue
            raise ResolutionFailed(f"{name} {version}: uv found no wheel for {target.platform} and no sdist")
        return found

    # --- download, hash, index -------------------------------------------------------------------

    def _lock_package(self, choice: _Choice, request: Request) -> LockedPackage:
        got = self.cache.fetch(choice.url)
        if choice.name in request.torch_names() and request.torch_index:
            index: str | None = request.torch_index
        else:
            index = index_of(choice.url, self.indexes.all_indexes())
            if index is None and not self.indexes.extra and not _is_local(choice.url):
                index = self.indexes.default
        artifact = Artifact(
            "wheel" if choice.kind == "wheel" else "sdist",
            choice.filename,
            got.sha256,
            got.size,
            url=choice.url,
            upload_time=choice.upload_time,
        )
        return LockedPackage(choice.name, choice.version, artifact, index=index)


def _links_page(previous: Lock, upgrade: Sequence[str]) -> str:
    """A flat index page (PEP 503 links) of the files an earlier lock chose, less the packages
    `upgrade` names, each with its sha256 (hashed from the bytes, so uv needs no download)."""
    skip = {canonicalize_name(n) for n in upgrade}
    links = [
        f'<a href="{html.escape(p.artifact.url.split("#", 1)[0])}#sha256={p.artifact.sha256}">{html.escape(p.artifact.filename)}</a><br>'
        for p in previous.packages
        if p.artifact.url and p.name not in skip
    ]
    return "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"


def _file_url(path: str | None) -> str:
    if not path:
        raise ResolutionFailed("uv wrote a file entry with neither url nor path")
    return Path(path).absolute().as_uri()


def _is_local(url: str) -> bool:
    return url.startswith("file:")


def _trim(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-25:])


def resolve(
    request: Request,
    *,
    tools: Tools,
    indexes: IndexConfig,
    cache: DownloadCache | None = None,
    previous: Lock | None = None,
    upgrade: Sequence[str] = (),
    part: EnvbuilderPart | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Lock:
    """The one call: resolve `request` into a Lock (see the module's docstring)."""
    resolver = Resolver(tools, indexes, cache=cache, on_note=on_note)
    return resolver.resolve(request, previous=previous, upgrade=upgrade, part=part)
