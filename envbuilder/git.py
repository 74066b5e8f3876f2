"""git for envbuilder: exact commits, submodules at their gitlinks (with a recipe's fallbacks for
gitlinks a remote lost), local mirrors (--mirror DIR) and a clone cache. Every command is argv,
run through the caller's runner so it lands in the step's log."""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from envbuilder import proc
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.paths import cache_dir

GIT = ["git", "-c", "advice.detachedHead=false", "-c", "protocol.file.allow=always", "-c", "core.autocrlf=false"]

Data = dict[str, Any]


def repo_name(url: str) -> tuple[str, str, str]:
    """(host, owner, name) of a repository URL; owner/host may be empty."""
    if re.match(r"^[^/:]+@[^:]+:", url):  # git@host:owner/name.git
        host, path = url.split("@", 1)[1].split(":", 1)
    else:
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path
    pieces = [p for p in path.strip("/").split("/") if p]
    name = pieces[-1].removesuffix(".git") if pieces else ""
    owner = pieces[-2] if len(pieces) > 1 else ""
    return host, owner, name


def mirror_candidates(mirror: Path, url: str) -> list[Path]:
    """Where --mirror DIR may hold a copy of url, in the order they are tried."""
    host, owner, name = repo_name(url)
    names = [f"{owner}+{name}", f"{owner}+{name}.git"] if owner else []
    if host and owner:
        names += [f"{host}/{owner}/{name}", f"{host}/{owner}/{name}.git"]
    if owner:
        names += [f"{owner}/{name}", f"{owner}/{name}.git"]
    names += [name, f"{name}.git"]
    return [mirror / n for n in names if n]


def git_dir(path: Path) -> Path | None:
    """path itself if it is a repository (bare or not), or its only repository child."""

    def is_repo(p: Path) -> bool:
        return ((p / "HEAD").is_file() and (p / "objects").is_dir()) or (p / ".git").exists()

    if not path.is_dir():
        return None
    if is_repo(path):
        return path
    children = [c for c in path.iterdir() if c.is_dir() and is_repo(c)]
    return children[0] if len(children) == 1 else None


def resolve_url(url: str, parent: str) -> str:
    """A submodule URL relative to its superproject's URL (./x, ../x), as git resolves it."""
    if not url.startswith(("./", "../")):
        return url
    base = parent.rstrip("/")
    for part in url.split("/"):
        if part == "..":
            base = base.rsplit("/", 1)[0]
        elif part not in (".", ""):
            base = f"{base}/{part}"
    return base


class Runner(Protocol):
    """How the git client runs commands and reports progress (a step's context)."""

    def run(self, argv: Sequence[str | Path]) -> None: ...

    def note(self, text: str) -> None: ...


class Git:
    """Checks out repositories at exact commits, submodules recursively at their gitlinks, from
    --mirror DIR or from envbuilder's own clone cache ($ENVBUILDER_CACHE/git)."""

    def __init__(self, ctx: Runner, mirror: Path | None) -> None:
        self.ctx = ctx
        self.mirror = mirror
        self.fallbacks: dict[str, tuple[str, str]] = {}  # submodule path -> (commit, why)

    def _has(self, repo: Path, commit: str) -> bool:
        try:
            proc.capture([*GIT, "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"], timeout=60)
            return True
        except EnvbuilderError:
            return False

    def locate(self, url: str, commit: str, note: str | None = None) -> Path:
        """A local repository that holds commit: from the mirror, or envbuilder's git cache."""
        if self.mirror:
            candidates = mirror_candidates(self.mirror, url)
            repo = next((r for r in map(git_dir, candidates) if r), None)
            if repo is None:
                raise InputError(
                    f"--mirror {self.mirror} has no copy of {url}",
                    hint="put a clone at one of: " + ", ".join(str(c) for c in candidates[:3]),
                )
            if not self._has(repo, commit):
                raise InputError(
                    f"the mirror copy {repo} of {url} lacks commit {commit}",
                    hint=note or f"fetch it into the mirror: git -C {repo} fetch {url} {commit}",
                )
            return repo
        _, owner, name = repo_name(url)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{owner}+{name}") + "-" + hashlib.sha256(url.encode()).hexdigest()[:8]
        repo = cache_dir() / "git" / f"{slug}.git"
        if not repo.exists():
            partial = repo.with_name(repo.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            self.ctx.note(f"cloning {url}")
            self.ctx.run([*GIT, "clone", "--mirror", "--quiet", url, str(partial)])
            partial.rename(repo)
        if not self._has(repo, commit):
            self.ctx.note(f"fetching {url}")
            self.ctx.run([*GIT, "-C", str(repo), "fetch", "--quiet", "--prune", "origin"])
        if not self._has(repo, commit):
            # GitHub serves any commit by its full hash, even one no branch holds any more
            with contextlib.suppress(EnvbuilderError):
                self.ctx.run([*GIT, "-C", str(repo), "fetch", "--quiet", "origin", commit])
        if not self._has(repo, commit):
            raise InputError(f"commit {commit} is not in {url}", hint=note or "check the recipe's commit hash")
        return repo

    def checkout(self, repo: Path, url: str, commit: str, dest: Path, *, recurse: bool, prefix: str = "") -> list[Data]:
        run = self.ctx.run
        run([*GIT, "clone", "--quiet", "--no-checkout", str(repo), str(dest)])
        run([*GIT, "-C", str(dest), "checkout", "--quiet", "--detach", commit])
        if not recurse:
            return []
        found = []
        for path, sha in self.gitlinks(dest):
            sub_url = self.submodule_url(dest, path)
            if sub_url is None:
                raise InputError(f"submodule {prefix}{path} of {url} has no URL in .gitmodules")
            sub_url = resolve_url(sub_url, url)
            record: Data = {"path": f"{prefix}{path}", "url": sub_url, "commit": sha}
            try:
                sub_repo = self.locate(sub_url, sha)
            except InputError as exc:
                fallback = self.fallbacks.get(f"{prefix}{path}")
                if fallback is None:
                    raise
                instead, why = fallback
                sub_repo = self.locate(sub_url, instead)
                record.update(commit=instead, pinned=sha, fallback=why)
                self.ctx.note(
                    f"warning: {prefix}{path} @ {sha[:12]} is not available ({exc.message}); using the recipe's fallback {instead[:12]}: {why}"
                )
                sha = instead
            target = dest / path
            shutil.rmtree(target, ignore_errors=True)
            found.append(record)
            self.ctx.note(f"submodule {prefix}{path} @ {sha[:12]}")
            found += self.checkout(sub_repo, sub_url, sha, target, recurse=True, prefix=f"{prefix}{path}/")
        return found

    def gitlinks(self, tree: Path) -> list[tuple[str, str]]:
        out = proc.capture([*GIT, "-C", str(tree), "ls-tree", "-r", "-z", "HEAD"], timeout=120)
        links = []
        for entry in out.split("\0"):
            if entry.startswith("160000 commit "):
                meta, path = entry.split("\t", 1)
                links.append((path, meta.split()[2]))
        return links

    def submodule_url(self, tree: Path, path: str) -> str | None:
        gitmodules = tree / ".gitmodules"
        if not gitmodules.is_file():
            return None
        try:
            out = proc.capture(
                [*GIT, "config", "-f", str(gitmodules), "-z", "--get-regexp", r"^submodule\..*\.(path|url)$"],
                timeout=60,
            )
        except EnvbuilderError:
            return None
        entries: dict[str, dict[str, str]] = {}
        for record in filter(None, out.split("\0")):
            key, _, value = record.partition("\n")
            name, _, field = key[len("submodule.") :].rpartition(".")
            entries.setdefault(name, {})[field] = value
        for entry in entries.values():
            if entry.get("path", "").strip("/") == path.strip("/"):
                return entry.get("url")
        return None
