"""sources: the method's source tree at <prefix>/src/<recipe>, exactly as pinned.

- a local path is copied (build artefacts left out), so patches never touch the user's tree;
- a git URL is fetched into envbuilder's cache (or found in --mirror DIR), checked out at the
  recipe's full commit, and every submodule is checked out at its gitlink, recursively, each
  one also looked up in the mirror first.

The tree is assembled in <dest>.partial and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from envbuilder import proc
from envbuilder.cache import IGNORED, tree_digest
from envbuilder.context import Context, Data
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.paths import cache_dir
from envbuilder.recipe.model import ExtensionUse, Fallback, GitSource

GIT = ["git", "-c", "advice.detachedHead=false", "-c", "protocol.file.allow=always", "-c", "core.autocrlf=false"]


def run(ctx: Context, inputs: Data) -> Data:
    git = _Git(ctx, Path(inputs["mirror"]) if inputs.get("mirror") else None)
    source = ctx.plan.recipe.source
    outputs = _fetch(
        ctx, git, inputs, ctx.layout.src / ctx.plan.recipe.name, source if isinstance(source, GitSource) else None
    )
    extensions = {}
    for ext in ctx.plan.extensions:
        if ext.extension.source is not None:
            source = ext.extension.source
            ext_inputs = {"git": source.url, "commit": source.commit, "submodules": source.submodules}
            extensions[ext.name] = _fetch(ctx, git, ext_inputs, ctx.layout.src / f"ext-{ext.name}", source)
    outputs["extensions"] = extensions
    return outputs


def extension_dir(sources: Data, ext: ExtensionUse) -> Path:
    """Where an extension's setup.py sits: in its own checkout, or inside the method's tree."""
    if ext.extension.source is not None:
        return Path(sources["extensions"][ext.name]["root"]) / ext.path
    return Path(sources["root"]) / ext.path


def _fetch(ctx: Context, git: _Git, inputs: Data, dest: Path, source: GitSource | None) -> Data:
    """One source tree at dest, assembled in dest.partial and renamed into place."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    if "path" in inputs:
        source = Path(inputs["path"])
        if not source.is_dir():
            raise InputError(f"source path {source} is not a directory")
        shutil.copytree(source, partial, symlinks=True, ignore=shutil.ignore_patterns(*IGNORED))
        outputs: Data = {"path": str(source), "digest": tree_digest(partial)}
        ctx.note(f"copied {source}")
    else:
        assert source is not None
        git.fallbacks = {f.path: f for f in source.fallbacks}
        repo = git.locate(inputs["git"], inputs["commit"], source.note)
        submodules = git.checkout(repo, inputs["git"], inputs["commit"], partial, recurse=inputs["submodules"])
        outputs = {"git": inputs["git"], "commit": inputs["commit"], "submodules": submodules}
        ctx.note(
            f"checked out {inputs['git']} @ {inputs['commit'][:12]}"
            + (f" with {len(submodules)} submodules" if submodules else "")
        )
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    outputs["root"] = str(dest)
    return outputs


def _repo_name(url: str) -> tuple[str, str, str]:
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
    host, owner, name = _repo_name(url)
    names = [f"{owner}+{name}", f"{owner}+{name}.git"] if owner else []
    if host and owner:
        names += [f"{host}/{owner}/{name}", f"{host}/{owner}/{name}.git"]
    if owner:
        names += [f"{owner}/{name}", f"{owner}/{name}.git"]
    names += [name, f"{name}.git"]
    return [mirror / n for n in names if n]


def _git_dir(path: Path) -> Path | None:
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


class _Git:
    def __init__(self, ctx: Context, mirror: Path | None) -> None:
        self.ctx = ctx
        self.mirror = mirror
        self.fallbacks: dict[str, Fallback] = {}

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
            repo = next((r for r in map(_git_dir, candidates) if r), None)
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
        _, owner, name = _repo_name(url)
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
        for path, sha in self._gitlinks(dest):
            sub_url = self._submodule_url(dest, path)
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
                sub_repo = self.locate(sub_url, fallback.commit)
                record.update(commit=fallback.commit, pinned=sha, fallback=fallback.why)
                self.ctx.note(
                    f"warning: {prefix}{path} @ {sha[:12]} is not available ({exc.message}); using the recipe's fallback {fallback.commit[:12]}: {fallback.why}"
                )
                sha = fallback.commit
            target = dest / path
            shutil.rmtree(target, ignore_errors=True)
            found.append(record)
            self.ctx.note(f"submodule {prefix}{path} @ {sha[:12]}")
            found += self.checkout(sub_repo, sub_url, sha, target, recurse=True, prefix=f"{prefix}{path}/")
        return found

    def _gitlinks(self, tree: Path) -> list[tuple[str, str]]:
        out = proc.capture([*GIT, "-C", str(tree), "ls-tree", "-r", "-z", "HEAD"], timeout=120)
        links = []
        for entry in out.split("\0"):
            if entry.startswith("160000 commit "):
                meta, path = entry.split("\t", 1)
                links.append((path, meta.split()[2]))
        return links

    def _submodule_url(self, tree: Path, path: str) -> str | None:
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
