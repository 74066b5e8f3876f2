"""sources: the method's source tree at <prefix>/src/<recipe>, exactly as pinned.

- a local path is copied (build artefacts left out), so patches never touch the user's tree;
- a git URL is fetched into envbuilder's cache (or found in --mirror DIR), checked out at the
  recipe's full commit, and every submodule is checked out at its gitlink, recursively
  (envbuilder/git.py); extensions with a repository of their own get a tree of their own.

Each tree is assembled in <dest>.partial and renamed into place only when complete.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import InputError
from envbuilder.recipe.model import GitSource, PathSource
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

if TYPE_CHECKING:
    from envbuilder.git import Git

NAME = "sources"
DEPENDS: tuple[str, ...] = ()
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()


@dataclass(frozen=True)
class Repo:
    """A repository at a commit, as the checkout needs it (GitSource minus its informational branch)."""

    url: str
    commit: str
    submodules: bool
    fallbacks: tuple[tuple[str, str, str], ...] = ()  # (path, commit, why)
    note: str | None = None  # what to do when a mirror lacks the commit

    @classmethod
    def of(cls, source: GitSource) -> Repo:
        return cls(
            source.url,
            source.commit,
            source.submodules,
            tuple((f.path, f.commit, f.why) for f in source.fallbacks),
            source.note,
        )

    def key(self) -> Data:
        data: Data = {"git": self.url, "commit": self.commit, "submodules": self.submodules}
        if self.fallbacks:
            data["fallbacks"] = [list(f) for f in self.fallbacks]
        if self.note:
            data["note"] = self.note
        return data


@dataclass(frozen=True)
class LocalTree:
    """A directory on this machine, copied; its content hash stands for what it holds."""

    path: str
    digest: str | None

    def key(self) -> Data:
        return {"path": self.path, "digest": self.digest}


@dataclass(frozen=True)
class Inputs:
    tree: Repo | LocalTree  # the method's source
    extensions: tuple[tuple[str, Repo], ...]  # extensions with a repository of their own
    mirror: str | None

    def key(self) -> Data:
        data = self.tree.key()
        if self.extensions:
            data["extensions"] = {name: _ext_key(repo) for name, repo in self.extensions}
        return {**data, "mirror": self.mirror}


def _ext_key(repo: Repo) -> object:
    short = [repo.url, repo.commit]  # the common case, kept as it always was
    rest = {k: v for k, v in repo.key().items() if k not in ("git", "commit") and (k != "submodules" or not v)}
    return short if not rest else {**dict(zip(("git", "commit"), short, strict=True)), **rest}


class Tree(TypedDict, total=False):
    root: str
    git: str
    commit: str
    submodules: list[Data]
    path: str
    digest: str


class Outputs(Tree):
    extensions: dict[str, Tree]


def inputs(r: Resolved) -> tuple[str, Inputs]:
    source, mirror = r.recipe.source, r.options.mirror
    own = tuple((e.name, Repo.of(e.extension.source)) for e in r.extensions if e.extension.source)
    if isinstance(source, PathSource):
        return f"copy {source.path}", Inputs(LocalTree(str(source.path), r.options.source_digest), own, _text(mirror))
    via = f" via mirror {mirror}" if mirror else ""
    summary = f"git {source.url} @ {source.commit[:12]}" + (" + submodules" if source.submodules else "") + via
    return summary, Inputs(Repo.of(source), own, _text(mirror))


def _text(path: Path | None) -> str | None:
    return str(path) if path else None


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder.git import Git

    git = Git(ctx, Path(inputs.mirror) if inputs.mirror else None)
    if isinstance(inputs.tree, Repo):
        tree = _checkout(ctx, git, inputs.tree, ctx.layout.source_tree)
    else:
        tree = _copy(ctx, Path(inputs.tree.path), ctx.layout.source_tree)
    own = {name: _checkout(ctx, git, repo, ctx.layout.src / f"ext-{name}") for name, repo in inputs.extensions}
    return Outputs(**tree, extensions=own)


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return Path(str(outputs.get("root", ""))).is_dir()


def extension_dir(sources: Outputs | dict[str, Any], name: str, path: str) -> Path:
    """Where an extension's setup.py sits: in its own checkout, or inside the method's tree."""
    own = sources.get("extensions", {}).get(name)
    return Path((own or sources)["root"]) / path


def _copy(ctx: StepContext, source: Path, dest: Path) -> Tree:
    from envbuilder.cache import IGNORED, tree_digest

    if not source.is_dir():
        raise InputError(f"source path {source} is not a directory")
    partial = _partial(dest)
    shutil.copytree(source, partial, symlinks=True, ignore=shutil.ignore_patterns(*IGNORED))
    tree = Tree(path=str(source), digest=tree_digest(partial))
    ctx.note(f"copied {source}")
    return _into_place(partial, dest, tree)


def _checkout(ctx: StepContext, git: Git, repo: Repo, dest: Path) -> Tree:
    partial = _partial(dest)
    git.fallbacks = {path: (commit, why) for path, commit, why in repo.fallbacks}
    local = git.locate(repo.url, repo.commit, repo.note)
    submodules = git.checkout(local, repo.url, repo.commit, partial, recurse=repo.submodules)
    ctx.note(
        f"checked out {repo.url} @ {repo.commit[:12]}" + (f" with {len(submodules)} submodules" if submodules else "")
    )
    return _into_place(partial, dest, Tree(git=repo.url, commit=repo.commit, submodules=submodules))


def _partial(dest: Path) -> Path:
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    return partial


def _into_place(partial: Path, dest: Path, tree: Tree) -> Tree:
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    tree["root"] = str(dest)
    return tree
