"""Which releases of a project have a wheel for the target Python, read from a package index's
simple API (PEP 503 HTML, or PEP 691 JSON when the index offers it).

`Index` is what the pin rules ask; `SimpleIndex` answers from an index URL (PyPI by default,
$ENVBUILDER_INDEX_URL or $PIP_INDEX_URL when set), caching each project's file list on disk for
a day. Tests pass their own index on 127.0.0.1. Only file names, requires-python and yanked
flags are read: nothing is downloaded or installed.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import Version

PYPI = "https://pypi.org/simple/"
CACHE_SECONDS = 24 * 3600
TIMEOUT = 20


@dataclass(frozen=True)
class IndexFile:
    filename: str
    requires_python: str | None = None
    yanked: bool = False


class Index(Protocol):
    url: str

    def files(self, project: str) -> list[IndexFile] | None:
        """The project's files, or None when the index has no such project."""


class IndexUnavailable(Exception):
    """The index could not be read (offline, timeout): the rule is not applied, a TODO says so."""


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[IndexFile] = []
        self._attrs: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._attrs is not None:
            href = self._attrs.get("href") or ""
            name = "".join(self._text).strip() or urllib.parse.unquote(href.split("#")[0].rsplit("/", 1)[-1])
            self.files.append(IndexFile(name, self._attrs.get("data-requires-python"), "data-yanked" in self._attrs))
            self._attrs = None


class SimpleIndex:
    def __init__(self, url: str | None = None, cache: Path | None = None) -> None:
        url = url or os.environ.get("ENVBUILDER_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or PYPI
        self.url = url if url.endswith("/") else url + "/"
        self.cache = cache
        self._memory: dict[str, list[IndexFile] | None] = {}

    def _cache_file(self, project: str) -> Path | None:
        if self.cache is None:
            return None
        key = hashlib.sha256(f"{self.url}\0{project}".encode()).hexdigest()[:32]
        return self.cache / f"{key}.json"

    def files(self, project: str) -> list[IndexFile] | None:
        project = canonicalize_name(project)
        if project in self._memory:
            return self._memory[project]
        cached = self._cache_file(project)
        if cached is not None and cached.is_file() and time.time() - cached.stat().st_mtime < CACHE_SECONDS:
            try:
                data = json.loads(cached.read_text())
                result = None if data is None else [IndexFile(**f) for f in data]
                self._memory[project] = result
                return result
            except (ValueError, TypeError):
                pass
        result = self._fetch(project)
        self._memory[project] = result
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(None if result is None else [f.__dict__ for f in result]))
            tmp.replace(cached)
        return result

    def _fetch(self, project: str) -> list[IndexFile] | None:
        if self.url.startswith("file:"):  # a local PEP 503 tree, as pip's --index-url file:///… reads it
            folder = Path(urllib.request.url2pathname(urllib.parse.urlsplit(self.url + project + "/").path))
            page = folder / "index.html"
            if page.is_file():
                parser = _Links()
                parser.feed(page.read_text(encoding="utf-8", errors="replace"))
                return parser.files
            return [IndexFile(p.name) for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else None
        if not self.url.startswith(("http://", "https://")):
            raise IndexUnavailable(f"{self.url}: only http(s):// and file:// indexes are read")
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            self.url + project + "/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1", "User-Agent": "envbuilder-new"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - http(s) only
                body = response.read()
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise IndexUnavailable(f"{self.url}: HTTP {exc.code} for {project}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise IndexUnavailable(f"{self.url}: {getattr(exc, 'reason', exc)}") from None
        if "json" in kind:
            data = json.loads(body)
            return [
                IndexFile(f["filename"], f.get("requires-python"), bool(f.get("yanked"))) for f in data.get("files", [])
            ]
        parser = _Links()
        parser.feed(body.decode("utf-8", errors="replace"))
        return parser.files


@dataclass(frozen=True)
class Target:
    """The Python and platform wheels must fit: CPython X.Y on Linux for one machine arch."""

    python: Version
    machine: str = "x86_64"

    def accepts(self, tag: Tag) -> bool:
        major, minor = self.python.major, self.python.minor
        interp_ok = tag.interpreter in (f"cp{major}{minor}", f"py{major}{minor}", f"py{major}", "py2.py3") or (
            tag.interpreter.startswith("cp3") and tag.abi == "abi3" and int(tag.interpreter[3:] or 0) <= minor
        )
        abi_ok = tag.abi in (f"cp{major}{minor}", "abi3", "none")
        plat = tag.platform
        plat_ok = plat == "any" or (
            plat.endswith(self.machine) and (plat.startswith("manylinux") or plat.startswith("linux_"))
        )
        return interp_ok and abi_ok and plat_ok

    def python_ok(self, requires: str | None) -> bool:
        if not requires:
            return True
        try:
            return SpecifierSet(requires).contains(self.python, prereleases=True)
        except InvalidSpecifier:
            return True


@dataclass(frozen=True)
class Release:
    version: Version
    wheel: bool  # has a wheel for the target
    sdist: bool


def _version(text: str, cache: dict[str, Version | None]) -> Version | None:
    if text not in cache:
        try:
            cache[text] = Version(text)
        except ValueError:
            cache[text] = None
    return cache[text]


def releases(files: Iterable[IndexFile], target: Target) -> list[Release]:
    """Every non-yanked final release on the index, oldest first, and whether it has a wheel that
    installs on the target. Wheel names are split by hand (PEP 427: name-version(-build)?-py-abi-
    platform.whl, each tag field possibly a dotted set): a project like numpy lists thousands."""
    wheel: dict[Version, bool] = {}
    sdist: dict[Version, bool] = {}
    versions: dict[str, Version | None] = {}
    for f in files:
        if f.yanked:
            continue
        name = f.filename
        if name.endswith(".whl"):
            parts = name[:-4].split("-")
            if len(parts) not in (5, 6):
                continue
            version = _version(parts[1], versions)
            if version is None:
                continue
            ok = wheel.get(version, False)
            if not ok:
                ok = any(
                    target.accepts(Tag(i, a, p))
                    for i in parts[-3].split(".")
                    for a in parts[-2].split(".")
                    for p in parts[-1].split(".")
                ) and target.python_ok(f.requires_python)
            wheel[version] = ok
        else:
            try:
                _, version = parse_sdist_filename(name)
            except (InvalidSdistFilename, ValueError):
                continue
            sdist[version] = True
    ordered = sorted({*wheel, *sdist})
    return [
        Release(v, wheel.get(v, False), sdist.get(v, False))
        for v in ordered
        if not v.is_prerelease and not v.is_devrelease
    ]
