"""envbuilder's part of a lock: built from a real plan, compared by `diff`, checked against the
host by `toolchain_problems`."""

from __future__ import annotations

from dataclasses import replace

from envbuilder.errors import EXIT_BAD_INPUT
from envbuilder.lock.diff import diff_locks
from envbuilder.lock.expect import toolchain_problems
from envbuilder.lock.model import Artifact, Lock, LockedPackage, Source, Submodule
from envbuilder.lock.record import part_from_plan, with_locked_torch
from envbuilder.lock.resolve import Request
from envbuilder.lock.target import Target
from envbuilder.lock.tomlfile import dumps, loads
from envbuilder.plan import Options, make_plan
from envbuilder.recipe.catalog import Catalog

from helpers import host


def pkg(name, version, sha="a"):
    return LockedPackage(
        name, version, Artifact("wheel", f"{name}-{version}-py3-none-any.whl", sha * 64, 10, url="https://x/f.whl")
    )


def test_diff_one_line_per_change():
    old = Lock((pkg("a", "1.0"), pkg("b", "2.0"), pkg("c", "3.0")))
    new = Lock((pkg("a", "1.1"), pkg("c", "3.0", sha="b"), pkg("d", "0.1")))
    assert [c.line() for c in diff_locks(old, new)] == [
        "a: 1.0 -> 1.1",
        "b: removed 2.0",
        "c: 3.0 -> 3.0 (file changed: sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)",
        "d: added 0.1",
    ]
    assert diff_locks(old, old) == []


def test_diff_sees_envbuilder_changes_but_not_how_it_was_resolved():
    plan = make_plan(Catalog.default().recipe("disco4d"), host(tools={"git": "/usr/bin/git"}), Options(arch="12.0"))
    part = part_from_plan(plan)
    old = Lock((pkg("a", "1.0"),), envbuilder=part)
    moved = replace(part, source=replace(part.source, commit="f" * 40), envbuilder="9.9")
    lines = [c.line() for c in diff_locks(old, Lock(old.packages, envbuilder=moved))]
    assert lines == [f"[envbuilder] source.commit: {part.source.commit[:12]} -> ffffffffffff"]


def test_part_from_plan_records_recipe_toolchain_sources_and_patches():
    plan = make_plan(Catalog.default().recipe("disco4d"), host(tools={"git": "/usr/bin/git"}), Options(arch="12.0"))
    sources = {
        "git": plan.step("sources").inputs["git"],
        "commit": plan.step("sources").inputs["commit"],
        "submodules": [
            {"path": "sub/a", "url": "https://example.org/a", "commit": "1" * 40},
            {
                "path": "sub/b",
                "url": "https://example.org/b",
                "commit": "2" * 40,
                "pinned": "3" * 40,
                "fallback": "gone upstream",
            },
        ],
    }
    part = part_from_plan(plan, sources=sources, extension_keys={"x": "k" * 8})
    assert part.recipe == "disco4d" and part.recipe_sha256 == plan.recipe.sha256
    assert part.toolchain.cuda == f"{plan.toolkit.version.major}.{plan.toolkit.version.minor}"
    assert part.toolchain.gcc_major == plan.compiler.version.major and part.archs == ("12.0",)
    assert part.source.submodules[1] == Submodule(
        "sub/b", "https://example.org/b", "2" * 40, fallback=True, pinned="3" * 40, why="gone upstream"
    )
    assert {p.name for p in part.patches} >= {"pil-rgb-uint8"}
    assert all(len(p.sha256) == 64 for p in part.patches)
    lock = Lock((pkg("torch", "2.14.1"), pkg("torchvision", "0.29.1")), envbuilder=part)
    lock = replace(lock, envbuilder=with_locked_torch(part, lock, ["torch", "torchvision"]))
    assert lock.envbuilder.torch.version == "2.14.1" and lock.envbuilder.torch.packages == {"torchvision": "0.29.1"}
    assert loads(dumps(lock)) == lock  # the schema round-trips


def test_an_extension_repository_patch_names_its_tree():
    """CAP4D patches gsplat's and PyTorch3D's own repositories, each at its root "."; the lock tells
    them apart by tree, as it tells the method's own "." patches from both."""
    plan = make_plan(Catalog.default().recipe("cap4d"), host(tools={"git": "/usr/bin/git"}), Options(arch="12.0"))
    part = part_from_plan(plan)
    by_tree = {(p.tree, p.name) for p in part.patches}
    assert {(None, "matplotlib-get-cmap"), ("gsplat", "cxx-standard"), ("pytorch3d", "cxx-standard")} <= by_tree
    assert len(by_tree) == len(part.patches)  # no two records alike
    assert loads(dumps(Lock((), envbuilder=part))).envbuilder.patches == part.patches


def test_wheels_inputs_make_a_request():
    plan = make_plan(Catalog.default().recipe("cap4d"), host(tools={"git": "/usr/bin/git"}), Options(arch="12.0"))
    request = Request.from_wheels_inputs(plan.step("wheels").inputs, Target("3.12", "x86_64-manylinux_2_28"))
    assert request.torch_names() == ["torch", "torchvision"] and request.no_isolation_names() == ["chumpy"]
    assert "chumpy==0.70" in request.all_requirements()


def test_host_that_cannot_meet_the_lock_is_refused():
    plan = make_plan(Catalog.default().recipe("canary"), host(), Options(arch="12.0"))
    lock = Lock((), envbuilder=part_from_plan(plan))
    want = lock.envbuilder.toolchain
    assert toolchain_problems(lock, cuda=want.cuda + ".1", python=want.python + ".4", gcc=f"{want.gcc_major}.3") == []
    problems = toolchain_problems(lock, cuda="12.8", python="3.9.1", gcc="99.1")
    assert [p.message.split(";")[0] for p in problems] == [
        f"the lock needs CUDA {want.cuda}",
        f"the lock needs Python {want.python}",
        f"the lock needs gcc {want.gcc_major}",
    ]
    assert "this host has CUDA 12.8" in problems[0].message and problems[0].exit_code == EXIT_BAD_INPUT


def test_source_needs_a_full_commit():
    text = dumps(
        Lock(
            (),
            envbuilder=replace(
                part_from_plan(make_plan(Catalog.default().recipe("canary"), host(), Options(arch="12.0"))),
                source=Source(git="https://x/y", commit="1" * 40),
            ),
        )
    )
    assert loads(text).envbuilder.source.commit == "1" * 40
