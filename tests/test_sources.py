"""The sources step against real git repositories made here: pinned commits, submodules at their
gitlinks (nested, relative URLs), --mirror lookups, and the errors when something is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envbuilder import git as gitlib
from envbuilder.cache import tree_digest
from envbuilder.context import Layout, StepContext
from envbuilder.errors import InputError
from envbuilder.plan import Options, make_plan
from envbuilder.recipe.catalog import Catalog
from envbuilder.steps import Deps, sources

from helpers import git, host, make_repo, write_recipe


def build_repos(base: Path, *, relative: bool = False) -> dict[str, str]:
    """c (leaf) <- b (has c as a submodule) <- a (has b). b and c gain later commits that the
    gitlinks must NOT pick up."""
    c1 = make_repo(base / "c", {"c.txt": "c1"})
    b_dir = base / "b"
    make_repo(b_dir, {"b.txt": "b1"})
    git("submodule", "add", "-q", (base / "c").as_uri(), "third_party/c", cwd=b_dir)
    git("commit", "-q", "-m", "add c", cwd=b_dir)
    b1 = git("rev-parse", "HEAD", cwd=b_dir)
    a_dir = base / "a"
    make_repo(a_dir, {"a.txt": "a1"})
    url = "../b" if relative else (base / "b").as_uri()
    git("submodule", "add", "-q", url, "submodules/b", cwd=a_dir)
    git("commit", "-q", "-m", "add b", cwd=a_dir)
    a1 = git("rev-parse", "HEAD", cwd=a_dir)
    # later commits upstream that the pins must ignore
    (base / "c" / "c.txt").write_text("c2")
    git("commit", "-qam", "c2", cwd=base / "c")
    (b_dir / "b.txt").write_text("b2")
    git("commit", "-qam", "b2", cwd=b_dir)
    return {"a": a1, "b": b1, "c": c1}


def run_sources(
    tmp_path: Path, url: str, commit: str, mirror: Path | None = None, note: str = ""
) -> tuple[StepContext, dict]:
    body = (
        f"name: demo\nsummary: x\nsource:\n  git: {url}\n  commit: {commit}\n"
        + (f"  note: {note}\n" if note else "")
        + "python: '>=3.8'\ntorch:\n  cu130: {torch: '>=2.11'}\n"
    )
    write_recipe(tmp_path / "data", "demo", body)
    recipe = Catalog.default([tmp_path / "data"]).recipe("demo")
    plan = make_plan(recipe, host(), Options(arch="12.0", prefix=tmp_path / "env", mirror=mirror))
    layout = Layout(plan.prefix, recipe.name)
    layout.logs.mkdir(parents=True)
    ctx = StepContext(layout=layout, log=layout.logs / "sources.log")
    return ctx, dict(sources.run(ctx, plan.step("sources").given, Deps("sources", {}, {})))


def test_checkout_pins_commit_and_submodules(tmp_path):
    commits = build_repos(tmp_path / "up")
    _, out = run_sources(tmp_path, (tmp_path / "up" / "a").as_uri(), commits["a"])
    root = Path(out["root"])
    assert (root / "a.txt").read_text() == "a1"
    assert (root / "submodules/b/b.txt").read_text() == "b1"  # gitlink, not b's newer HEAD
    assert (root / "submodules/b/third_party/c/c.txt").read_text() == "c1"
    assert [(s["path"], s["commit"]) for s in out["submodules"]] == [
        ("submodules/b", commits["b"]),
        ("submodules/b/third_party/c", commits["c"]),
    ]
    assert git("rev-parse", "HEAD", cwd=root) == commits["a"]
    assert not root.with_name("demo.partial").exists()


def test_relative_submodule_url(tmp_path):
    commits = build_repos(tmp_path / "up", relative=True)
    _, out = run_sources(tmp_path, (tmp_path / "up" / "a").as_uri(), commits["a"])
    assert out["submodules"][0]["url"] == (tmp_path / "up" / "b").as_uri()
    assert (Path(out["root"]) / "submodules/b/b.txt").read_text() == "b1"


def test_mirror_serves_every_repository_offline(tmp_path):
    """URLs point at an unreachable host; only the mirror (owner+name layout) can serve them."""
    up = tmp_path / "up"
    commits = build_repos(up)
    mirror = tmp_path / "mirror"
    for name in ("a", "b", "c"):
        git("clone", "-q", "--mirror", up / name, mirror / f"example+{name}" / f"{name}.git", cwd=tmp_path)
    # point a's .gitmodules at the unreachable URLs, as a real upstream would
    a_mirror = mirror / "example+a" / "a.git"
    work = tmp_path / "a-work"
    git("clone", "-q", a_mirror, work, cwd=tmp_path)
    git("config", "-f", ".gitmodules", "submodule.submodules/b.url", "https://git.invalid/example/b.git", cwd=work)
    git("commit", "-qam", "upstream urls", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    pinned = git("rev-parse", "HEAD", cwd=work)
    b_mirror = mirror / "example+b" / "b.git"
    b_work = tmp_path / "b-work"
    git("clone", "-q", b_mirror, b_work, cwd=tmp_path)
    git("checkout", "-q", commits["b"], cwd=b_work)
    git("config", "-f", ".gitmodules", "submodule.third_party/c.url", "https://git.invalid/example/c.git", cwd=b_work)
    git("commit", "-qam", "upstream urls", cwd=b_work)
    b_pinned = git("rev-parse", "HEAD", cwd=b_work)
    git("push", "-q", "origin", "HEAD:refs/heads/pinned", cwd=b_work)
    git("update-index", "--cacheinfo", f"160000,{b_pinned},submodules/b", cwd=work)
    git("commit", "-qm", "bump b", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    pinned = git("rev-parse", "HEAD", cwd=work)

    _, out = run_sources(tmp_path, "https://git.invalid/example/a.git", pinned, mirror=mirror)
    root = Path(out["root"])
    assert (root / "submodules/b/third_party/c/c.txt").read_text() == "c1"
    assert [s["url"] for s in out["submodules"]] == [
        "https://git.invalid/example/b.git",
        "https://git.invalid/example/c.git",
    ]


def test_mirror_without_the_repository(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(InputError, match="has no copy of https://git.invalid/example/a.git") as info:
        run_sources(tmp_path, "https://git.invalid/example/a.git", "a1" * 20, mirror=tmp_path / "mirror")
    assert "example+a" in info.value.hint


def test_mirror_lacking_the_commit_shows_the_recipe_note(tmp_path):
    commits = build_repos(tmp_path / "up")
    mirror = tmp_path / "mirror"
    git("clone", "-q", "--mirror", tmp_path / "up" / "a", mirror / "a.git", cwd=tmp_path)
    missing = "f" * 40
    with pytest.raises(InputError, match=f"lacks commit {missing}") as info:
        run_sources(
            tmp_path, "https://git.invalid/example/a.git", missing, mirror=mirror, note="use branch main at abc"
        )
    assert info.value.hint == "use branch main at abc"
    assert commits  # the mirror has other commits, just not this one


def test_unknown_commit_from_url(tmp_path):
    build_repos(tmp_path / "up")
    with pytest.raises(InputError, match="is not in"):
        run_sources(tmp_path, (tmp_path / "up" / "a").as_uri(), "e" * 40)


def test_path_source_digest_ignores_build_artefacts(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "setup.py").write_text("x")
    before = tree_digest(src)
    (src / "build").mkdir()
    (src / "build" / "junk.o").write_text("y")
    (src / "pkg" / "__pycache__").mkdir()
    assert tree_digest(src) == before
    (src / "pkg" / "new.py").write_text("z")
    assert tree_digest(src) != before


def test_mirror_candidates():
    names = [
        p.name
        for p in gitlib.mirror_candidates(Path("/m"), "https://github.com/ashawkey/diff-gaussian-rasterization.git")
    ]
    assert names[0] == "ashawkey+diff-gaussian-rasterization"
    assert "diff-gaussian-rasterization.git" in names
    assert (
        gitlib.resolve_url("../simple-knn.git", "https://gitlab.inria.fr/bkerbl/x.git")
        == "https://gitlab.inria.fr/bkerbl/simple-knn.git"
    )
    assert shutil.which("git")
