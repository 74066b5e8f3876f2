"""Git repositories in a bundle: one `git bundle` per repository (the method's, each submodule's,
each extension's own), holding the commits the lock names and their history, and
git/repos.json mapping each URL to its file.

On the offline machine the bundles become bare mirrors under envbuilder's cache, laid out as
`--mirror DIR` expects (DIR/owner+name): the sources step then checks out the same commits, and
every submodule from its own bundle, with no network (research/locks.md §6.4: a superproject's
bundle holds no submodule, so each gets one)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from envbuilder import proc
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.git import GIT, Git, mirror_candidates

REPOS = "repos.json"


class _Runner:
    """What envbuilder.git.Git needs to run commands: a log and notes."""

    def __init__(self, log: Path, note: Callable[[str], None]) -> None:
        self.log, self.note = log, note

    def run(self, argv: Iterable[str | Path]) -> None:
        proc.run([str(a) for a in argv], log=self.log)


def write(repos: dict[str, set[str]], out: Path, *, mirror: Path | None, note: Callable[[str], None]) -> dict[str, str]:
    """One bundle per URL in `repos` (url -> commits), into out/; returns url -> file name.

    A local copy that lacks objects of its own history (a partial clone: git bundle then fails
    with "unable to read") travels as the bare repository folder itself, <name>.git/, and gives
    the offline machine exactly the checkout this one gets."""
    out.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="envbuilder-bundle-git-") as tmp:
        runner = _Runner(Path(tmp) / "git.log", note)
        git = Git(runner, mirror)
        for url, commits in sorted(repos.items()):
            local = None
            for commit in sorted(commits):
                local = git.locate(url, commit)
            assert local is not None
            name = mirror_candidates(Path(), url)[0].name
            names[url] = f"{name}.bundle"
            try:
                _bundle(local, sorted(commits), out / names[url], Path(tmp) / name)
                note(f"git bundle {names[url]}: {len(commits)} commit(s) of {url}")
            except EnvbuilderError as exc:
                if "unable to read" not in exc.message:
                    raise
                names[url] = f"{name}.git"
                shutil.copytree(_bare(local), out / names[url], symlinks=True)
                note(
                    f"warning: {url}: its local copy {local} lacks objects of its history, so no git bundle "
                    f"can be made; carried as the repository folder {names[url]}"
                )
    (out / REPOS).write_text(json.dumps(names, indent=1, sort_keys=True) + "\n")
    return names


def _bundle(local: Path, commits: list[str], dest: Path, scratch: Path) -> None:
    """A bundle of exactly these commits (and their history), made from a scratch clone so that
    the git cache or the user's mirror gets no refs of ours."""
    proc.capture([*GIT, "clone", "--bare", "--shared", "--quiet", str(local), str(scratch)], timeout=600)
    for commit in commits:
        proc.capture([*GIT, "-C", str(scratch), "update-ref", f"refs/envbuilder/{commit}", commit], timeout=60)
    partial = dest.with_name(dest.name + ".partial")
    refs = [f"refs/envbuilder/{c}" for c in commits]
    proc.capture([*GIT, "-C", str(scratch), "bundle", "create", str(partial), *refs], timeout=1800, merge_stderr=True)
    partial.rename(dest)


def _bare(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").is_dir() else repo


def restore(bundle: Path, into: Path) -> Path:
    """The bundle's repositories as bare mirrors under `into` (made once, whole); returns the
    folder to pass as the sources step's mirror."""
    index = bundle / "git" / REPOS
    if not index.is_file():
        raise InputError(f"{bundle} holds no git repositories ({index} is missing)")
    names: dict[str, str] = json.loads(index.read_text())
    into.mkdir(parents=True, exist_ok=True)
    for url, file in names.items():
        dest = into / mirror_candidates(Path(), url)[0].name
        if dest.is_dir():
            continue
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        if file.endswith(".git"):  # a repository folder (see write)
            shutil.copytree(bundle / "git" / file, partial, symlinks=True)
            partial.rename(dest)
            continue
        try:
            proc.capture([*GIT, "clone", "--mirror", "--quiet", str(bundle / "git" / file), str(partial)], timeout=1800)
        except EnvbuilderError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise InputError(f"{bundle / 'git' / file}: not a git bundle git can read ({exc.message})") from None
        partial.rename(dest)
    return into
