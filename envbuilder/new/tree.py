"""The method's tree at one commit, checked out (with its submodules at their gitlinks) into a
scratch folder for reading.

Git work goes through envbuilder's git client (envbuilder.git: mirror lookup, envbuilder's clone
cache, relative submodule URLs), so the clone `new` makes is the one `build` reuses. A submodule whose pinned commit its remote lacks is never replaced: it is reported with
the branches the remote does have; for reading only, the remote's default branch is checked
out and everything found in it is marked as read from there.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuilder import proc
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.git import GIT, Git, git_dir, mirror_candidates, resolve_url

URL_RE = re.compile(r"^(https?://|ssh://|git://|file://|git@[^:]+:)\S+$")
HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class Submodule:
    path: str  # relative to the method's root
    url: str
    commit: str  # the gitlink
    status: str  # ok | missing | no-url
    branches: dict[str, str] = field(default_factory=dict)  # missing: what the remote has (branch -> commit)
    declared_branch: str | None = None  # .gitmodules' branch = …, if any
    read_from: str | None = None  # missing: what was checked out for reading instead
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "url": self.url,
            "commit": self.commit,
            "status": self.status,
            "branches": self.branches,
            "declared_branch": self.declared_branch,
            "read_from": self.read_from,
            "message": self.message,
        }


@dataclass
class Tree:
    root: Path  # where the tree can be read
    origin: str  # what the user gave
    url: str | None  # the git URL the recipe records (None: a plain directory)
    commit: str | None
    branch: str | None = None  # the remote's default branch, when the commit is its head
    path: Path | None = None  # a plain directory source
    submodules: list[Submodule] = field(default_factory=list)
    listed_only: list[str] = field(default_factory=list)  # .gitmodules entries with no gitlink
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        base = self.url or str(self.path or self.origin)
        return base.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")


class _Runner:
    """The git client's runner (envbuilder.git.Runner) outside a build: no step log, notes kept."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def run(self, argv: Sequence[str | Path]) -> None:
        proc.capture([str(a) for a in argv], timeout=1800)

    def note(self, text: str) -> None:
        self.notes.append(text)


def _git(*args: str, timeout: float = 120) -> str:
    return proc.capture([*GIT, *args], timeout=timeout)


def _ls_remote(url: str, *args: str) -> dict[str, str]:
    """ref -> commit on the remote; an InputError naming the URL when it is no repository."""
    try:
        out = _git("ls-remote", *args, url, timeout=120)
    except EnvbuilderError as exc:
        tail = getattr(exc, "tail", "") or exc.message
        raise InputError(
            f"{url} is not a git repository envbuilder can read: {tail.strip().splitlines()[-1] if tail.strip() else 'git ls-remote failed'}",
            hint="check the URL (https://github.com/<owner>/<repo>), or give a local clone's path or --mirror DIR; nothing was written",
        ) from None
    refs: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("ref: "):
            target, _, name = line[5:].partition("\t")
            refs[f"symref:{name}"] = target
            continue
        sha, _, ref = line.partition("\t")
        if sha and ref:
            refs[ref] = sha
    return refs


def _rev_parse(repo: Path, rev: str) -> str | None:
    try:
        return (
            _git("-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", timeout=60).strip() or None
        )
    except EnvbuilderError:
        return None


def _branches(repo: Path) -> dict[str, str]:
    try:
        out = _git("-C", str(repo), "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", timeout=60)
    except EnvbuilderError:
        return {}
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _head_branch(repo: Path) -> str | None:
    try:
        return _git("-C", str(repo), "symbolic-ref", "--short", "HEAD", timeout=30).strip() or None
    except EnvbuilderError:
        return None


def _no_commit(rev: str, where: str) -> InputError:
    return InputError(
        f"commit {rev} does not exist in {where}",
        hint="give a commit, branch or tag the repository has (git ls-remote shows them), or leave out --commit "
        "for the default branch's head; nothing was written",
    )


class Reader:
    def __init__(self, mirror: Path | None) -> None:
        self.runner = _Runner()
        self.git = Git(self.runner, mirror)
        self.mirror = mirror

    def _mirror_repo(self, url: str) -> Path:
        assert self.mirror is not None
        candidates = mirror_candidates(self.mirror, url)
        repo = next((r for r in map(git_dir, candidates) if r), None)
        if repo is None:
            raise InputError(
                f"--mirror {self.mirror} has no copy of {url}",
                hint="put a clone at one of: " + ", ".join(str(c) for c in candidates[:3]) + "; nothing was written",
            )
        return repo

    def remote(self, url: str, rev: str | None) -> tuple[Path, str, str | None]:
        """(local repository holding the commit, full commit, default branch if it is its head)."""
        if self.mirror is not None:
            repo = self._mirror_repo(url)
            full = _rev_parse(repo, rev or "HEAD")
            if full is None:
                raise _no_commit(rev or "HEAD", f"the mirror copy {repo} of {url}")
            head = _head_branch(repo)
            branch = head if head and _rev_parse(repo, head) == full else None
            return repo, full, branch
        refs = _ls_remote(url, "--symref")
        head = refs.get("HEAD")
        default = refs.get("symref:HEAD", "").removeprefix("refs/heads/") or None
        if rev is None:
            if head is None:
                raise InputError(f"{url} has no HEAD (an empty repository?)", hint="give --commit; nothing was written")
            full = head
        elif re.fullmatch(r"[0-9a-f]{40}", rev):
            full = rev
        else:
            full = next(
                (refs[r] for r in (f"refs/heads/{rev}", f"refs/tags/{rev}^{{}}", f"refs/tags/{rev}") if r in refs), ""
            )
            if not full and HEX_RE.match(rev) and head:
                # a short hash: the clone (envbuilder's cache, which build reuses) resolves it
                repo = self.git.locate(url, head)
                full = _rev_parse(repo, rev) or ""
            if not full:
                raise _no_commit(rev, url)
        try:
            repo = self.git.locate(url, full)
        except InputError:
            raise _no_commit(rev or full, url) from None
        return repo, full, default if head == full else None

    def checkout(self, repo: Path, url: str, commit: str, dest: Path) -> None:
        self.git.checkout(repo, url, commit, dest, recurse=False)

    def submodules(self, tree: Tree, dest: Path, url: str, prefix: str = "") -> None:
        listed = self._listed(dest)
        links = self.git.gitlinks(dest)
        linked = {p for p, _ in links}
        tree.listed_only += [f"{prefix}{p}" for p in listed if p not in linked]
        for path, sha in links:
            sub_url = self.git.submodule_url(dest, path)
            full_path = f"{prefix}{path}"
            if sub_url is None:
                tree.submodules.append(
                    Submodule(full_path, "", sha, "no-url", message=f"gitlink {sha[:12]} has no URL in .gitmodules")
                )
                continue
            sub_url = resolve_url(sub_url, url)
            target = dest / path
            shutil.rmtree(target, ignore_errors=True)
            try:
                sub_repo = self.git.locate(sub_url, sha)
            except InputError as exc:
                tree.submodules.append(self._missing(full_path, sub_url, sha, exc, target, self._branch_of(dest, path)))
                continue
            tree.submodules.append(Submodule(full_path, sub_url, sha, "ok"))
            self.checkout(sub_repo, sub_url, sha, target)
            self.submodules(tree, target, sub_url, prefix=f"{full_path}/")

    def _listed(self, dest: Path) -> list[str]:
        if not (dest / ".gitmodules").is_file():
            return []
        try:
            out = _git("config", "-f", str(dest / ".gitmodules"), "--get-regexp", r"^submodule\..*\.path$", timeout=30)
        except EnvbuilderError:
            return []
        return [line.split(" ", 1)[1].strip("/") for line in out.splitlines() if " " in line]

    def _branch_of(self, dest: Path, path: str) -> str | None:
        try:
            out = _git(
                "config", "-f", str(dest / ".gitmodules"), "--get-regexp", r"^submodule\..*\.(path|branch)$", timeout=30
            )
        except EnvbuilderError:
            return None
        fields: dict[str, dict[str, str]] = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            name, _, field_name = key[len("submodule.") :].rpartition(".")
            fields.setdefault(name, {})[field_name] = value.strip()
        return next((f.get("branch") for f in fields.values() if f.get("path", "").strip("/") == path.strip("/")), None)

    def _missing(
        self, path: str, url: str, sha: str, exc: InputError, target: Path, declared: str | None = None
    ) -> Submodule:
        """A gitlink its remote lacks: what the remote has, and a branch of it for reading (the
        one .gitmodules names, else the default)."""
        sub = Submodule(path, url, sha, "missing", message=exc.message, declared_branch=declared)
        repo: Path | None = None
        default: str | None = None
        if self.mirror is not None:
            with contextlib.suppress(InputError):
                repo = self._mirror_repo(url)
            if repo is not None:
                sub.branches = _branches(repo)
                default = _head_branch(repo)
        else:
            with contextlib.suppress(InputError):
                refs = _ls_remote(url, "--symref")
                sub.branches = {
                    r.removeprefix("refs/heads/"): s for r, s in refs.items() if r.startswith("refs/heads/")
                }
                default = refs.get("symref:HEAD", "").removeprefix("refs/heads/") or None
                if sub.branches:
                    with contextlib.suppress(InputError):
                        repo = self.git.locate(url, sub.branches.get(default or "", next(iter(sub.branches.values()))))
        if repo is not None and sub.branches:
            if declared in sub.branches:
                default = declared
            name = default if default in sub.branches else sorted(sub.branches)[0]
            with contextlib.suppress(EnvbuilderError):
                self.checkout(repo, url, sub.branches[name], target)
                sub.read_from = f"{name} {sub.branches[name][:12]}"
        return sub


def open_tree(target: str, commit: str | None, mirror: Path | None, scratch: Path) -> Tree:
    """The tree to analyse. Bad input (no repository, no such commit) is an InputError; nothing
    is written outside `scratch` (and envbuilder's git cache)."""
    reader = Reader(mirror)
    local = Path(target).expanduser()
    if local.exists() and not URL_RE.match(target):
        if not local.is_dir():
            raise InputError(f"{target} is a file; give a repository URL or a directory", hint="nothing was written")
        local = local.resolve()
        repo = git_dir(local) if (local / ".git").exists() or (local / "HEAD").is_file() else None
        if repo is None:
            if commit:
                raise InputError(
                    f"{target} is not a git repository, so --commit {commit} cannot be read from it",
                    hint="drop --commit to read the directory as it is; nothing was written",
                )
            tree = Tree(root=local, origin=target, url=None, commit=None, path=local)
            tree.notes.append("a plain directory (no git): the recipe's source is this path")
            return tree
        full = _rev_parse(local, commit or "HEAD")
        if full is None:
            raise _no_commit(commit or "HEAD", str(local))
        url = local.as_uri()
        tree = Tree(root=scratch / "tree", origin=target, url=url, commit=full, branch=None)
        try:
            origin = _git("-C", str(local), "remote", "get-url", "origin", timeout=30).strip()
        except EnvbuilderError:
            origin = ""
        if origin:
            tree.notes.append(f"origin is {origin}: use it as source.git once {full[:12]} is pushed there")
        with contextlib.suppress(EnvbuilderError):
            if (local / ".git").exists() and _git(
                "-C", str(local), "status", "--porcelain", "--untracked-files=no", timeout=60
            ).strip():
                tree.notes.append(f"{target} has uncommitted changes; the recipe pins {full[:12]} without them")
        reader.checkout(local, url, full, tree.root)
    elif URL_RE.match(target):
        repo, full, branch = reader.remote(target, commit)
        tree = Tree(root=scratch / "tree", origin=target, url=target, commit=full, branch=branch)
        reader.checkout(repo, target, full, tree.root)
    else:
        raise InputError(
            f"{target!r} is neither a directory nor a git URL",
            hint="give https://github.com/<owner>/<repo>, git@host:owner/repo.git, file:///path, or a local path; nothing was written",
        )
    reader.submodules(tree, tree.root, tree.url or "")
    tree.notes += reader.runner.notes
    return tree
