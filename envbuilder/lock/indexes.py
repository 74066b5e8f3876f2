"""Where a resolution may look for packages, said explicitly (uv reads no pip config, and
envbuilder gives both installers the same sources):

- the recipe's torch index (download.pytorch.org/whl/cu128 …) serves only the torch family
  (the recipe's `torch:` packages); it never supplies numpy or anything else (resolve.py);
- the default index: PyPI, or this machine's pip `index-url`;
- this machine's pip `extra-index-url`, `find-links` and `constraint`, when `site_config` is on
  (the default in the CLI: a user behind a mirror set pip up for it, and envbuilder's unlocked
  builds, which run pip, see the same). A lock made that way names this machine's indexes:
  fine for this machine, and [tool.envbuilder.resolution] says so (`site-config = true`);
  commit only locks made against public indexes (`--no-pip-config`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from envbuilder import proc
from envbuilder.errors import EnvbuilderError

PYPI = "https://pypi.org/simple"


@dataclass(frozen=True)
class IndexConfig:
    default: str = PYPI
    extra: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: tuple[Path, ...] = ()  # constraint files (pip's `constraint` setting)
    site_config: bool = False
    origin: Mapping[str, str] = field(default_factory=dict)  # setting -> where it came from

    def all_indexes(self) -> tuple[str, ...]:
        return (*self.extra, self.default)


def from_pip_config(pip: list[str], env: Mapping[str, str] | None = None) -> IndexConfig:
    """This machine's pip settings (`pip config list`: files and PIP_* variables), for the
    install command. Later sources win as pip decides: global < install, files < environment."""
    try:
        out = proc.capture([*pip, "config", "list"], env=env, timeout=60)
    except EnvbuilderError:
        return IndexConfig()
    values: dict[str, tuple[int, str, str]] = {}
    rank = {"global": 0, "install": 1, ":env:": 2}
    for line in out.splitlines():
        found = re.match(r"^([^.=]+)\.([a-z-]+)=(.*)$", line.strip())
        if not found:
            continue
        section, key, raw = found.groups()
        if section not in rank:
            continue
        try:
            value = " ".join(shlex.split(raw))
        except ValueError:
            value = raw.strip("'\"")
        if key not in values or rank[section] >= values[key][0]:
            values[key] = (rank[section], value, section)
    if not values:
        return IndexConfig()

    def many(key: str) -> tuple[str, ...]:
        return tuple(values[key][1].split()) if key in values else ()

    def origin(key: str) -> str:
        section = values[key][2]
        return f"PIP_{key.upper().replace('-', '_')}" if section == ":env:" else f"pip config {section}.{key}"

    default = values["index-url"][1] if "index-url" in values else PYPI
    return IndexConfig(
        default=default.rstrip("/"),
        extra=tuple(u.rstrip("/") for u in many("extra-index-url")),
        find_links=tuple(_as_local(u) for u in many("find-links")),
        constraints=tuple(Path(c) for c in many("constraint") if Path(c).is_file()),
        site_config=True,
        origin={k: origin(k) for k in ("index-url", "extra-index-url", "find-links", "constraint") if k in values},
    )


def _as_local(location: str) -> str:
    return location[len("file://") :] if location.startswith("file://") else location


def index_of(url: str, indexes: tuple[str, ...]) -> str | None:
    """The index a file URL most likely came from: the one whose base (its URL less /simple)
    starts the file's URL, as for file:// indexes, devpi, Artifactory, this project's test index;
    PyPI's files live on files.pythonhosted.org. None when no index fits (find-links)."""
    for index in indexes:
        base = index.rstrip("/").removesuffix("/simple").removesuffix("/+simple")
        if url.startswith(base + "/"):
            return index
        if urlsplit(index).hostname == "pypi.org" and urlsplit(url).hostname == "files.pythonhosted.org":
            return index
    return None
