"""The step protocol: one list of steps, each module declaring what it needs, and keys that
provably cover what a step may read.

A step's run() sees only its Inputs, the outputs of the steps it builds on, and a context that
holds no plan. So a key is complete when it changes whenever any field of the Inputs changes:
the perturbation test below changes every field (recursively, into nested records) of every
step's Inputs, for the plans of every shipped recipe, and fails when the key stays the same.
Recipes, extensions and patches are content-addressed: everything in them comes from the bytes
their sha256 hashes, so changing those bytes (the sha256) must change the key.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import types
import typing
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from envbuilder.context import StepContext
from envbuilder.host import Gpu
from envbuilder.lock.model import Artifact, EnvbuilderPart, Lock, LockedPackage, Toolchain
from envbuilder.plan import Options, make_plan
from envbuilder.recipe.catalog import Catalog
from envbuilder.recipe.model import Asset, Extension, Patch, PatchUse, Recipe
from envbuilder.recipe.when import Condition, parse_condition
from envbuilder.steps import NAMES, STEPS, Deps, builds_on, key_of
from envbuilder.steps.extensions import Build
from envbuilder.steps.patches import PatchSet
from envbuilder.steps.sources import Repo
from envbuilder.steps.wheels import Locked

from helpers import host

CONTENT_ADDRESSED = (Recipe, Extension, Patch)
LOCKED = LockedPackage("pkg", "1.0", Artifact("wheel", "pkg-1.0-py3-none-any.whl", "0" * 64, 10, url="https://x/p.whl"))
H100 = Gpu(0, "NVIDIA H100", "9.0", "580.0", 81559)
CATALOG = Catalog.default()
RECIPES = sorted(CATALOG.recipe_files())


def test_one_list_of_steps_each_declaring_the_protocol():
    assert tuple(s.NAME for s in STEPS) == NAMES
    for index, step in enumerate(STEPS):
        for member in (
            "DEPENDS",
            "VOLATILE",
            "DISTRUST_AFTER_CUT",
            "Inputs",
            "Outputs",
            "inputs",
            "run",
            "still_valid",
        ):
            assert hasattr(step, member), f"steps/{step.NAME}.py lacks {member}"
        assert set(step.DEPENDS) <= set(NAMES[:index]), f"{step.NAME} depends on a later step"
        assert set(step.DISTRUST_AFTER_CUT) <= set(NAMES), step.NAME
        assert list(inspect.signature(step.run).parameters) == ["ctx", "inputs", "deps"], step.NAME
    plan = make_plan(CATALOG.recipe("canary"), host(), Options(arch="12.0"))
    assert tuple(s.name for s in plan.steps) == NAMES


def test_a_step_reads_only_the_outputs_it_builds_on():
    assert builds_on("patches") == ("toolchain", "sources", "venv", "wheels")
    deps = Deps("patches", {"sources": {"root": "/x"}}, {"sources": "k"})
    assert deps["sources"] == {"root": "/x"}
    with pytest.raises(KeyError, match="step patches does not build on step verify: add it to DEPENDS"):
        deps["verify"]


def test_the_step_context_holds_no_plan():
    fields = {f.name for f in dataclasses.fields(StepContext)}
    assert fields == {"layout", "log", "key", "on_line", "on_note"}


ALLOWED_CTX = {"layout", "log", "key", "note", "env", "run", "capture", "on_line", "on_note"}


@pytest.mark.parametrize("step", STEPS, ids=NAMES)
def test_step_code_reads_nothing_of_the_plan(step):
    """A static guard beside the dynamic one: no step module touches ctx beyond StepContext,
    nor imports the planner, the host probe or the recipe catalogue."""
    tree = ast.parse(Path(step.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ctx":
            assert node.attr in ALLOWED_CTX, f"steps/{step.NAME}.py:{node.lineno} reads ctx.{node.attr}"
        if isinstance(node, ast.ImportFrom):
            assert node.module not in ("envbuilder.plan", "envbuilder.recipe.catalog"), (
                f"steps/{step.NAME}.py:{node.lineno}"
            )
            assert not (node.module == "envbuilder.host" and any(a.name == "discover" for a in node.names))


def plans() -> Iterator[Any]:
    for name in RECIPES:
        recipe = CATALOG.recipe(name)
        yield make_plan(recipe, host(gpus=(H100,)), Options(arch="9.0;12.0"))
        yield make_plan(recipe, host(), Options(arch="12.0", mirror=Path("/mirror"), smoke=False, stub_assets=True))
    canary = CATALOG.recipe("canary")
    part = EnvbuilderPart(
        recipe="canary", recipe_sha256=canary.sha256, archs=("12.0",), toolchain=Toolchain(cuda="13.0")
    )
    lock = Lock((LOCKED,), envbuilder=part)
    yield make_plan(canary, host(), Options(lock=lock, lock_file=Path("/locks/pylock.canary.toml")))


@pytest.mark.parametrize("name", NAMES)
def test_every_input_reaches_the_key(name):
    checked = 0
    for plan in plans():
        planned = plan.step(name)
        base = key_of(name, planned.given, [])
        for path, changed in variants(planned.given, type(planned.given)):
            assert key_of(name, changed, []) != base, f"{name}: Inputs.{path} can change without changing the key"
            checked += 1
    assert checked, f"{name}: no input was checked"


# --- changing a value, whatever its type -------------------------------------------------------


def variants(value: Any, hint: Any) -> Iterator[tuple[str, Any]]:
    """(path, a copy of value with one thing changed) for every field reachable inside value."""
    if isinstance(value, CONTENT_ADDRESSED):
        yield "sha256", dataclasses.replace(value, sha256="f" * 64)
    elif dataclasses.is_dataclass(value) and not isinstance(value, Condition):
        hints = typing.get_type_hints(type(value))
        for f in dataclasses.fields(value):
            for path, changed in variants(getattr(value, f.name), hints[f.name]):
                yield f"{f.name}{'.' + path if path else ''}", dataclasses.replace(value, **{f.name: changed})
    elif isinstance(value, tuple):
        yield from _tuple_variants(value, hint)
    elif isinstance(value, dict):
        for k, v in value.items():
            for path, changed in variants(v, str):
                yield f"[{k!r}]{'.' + path if path else ''}", {**value, k: changed}
        yield "[+]", {**value, "EXTRA_KEY": "x"}
    else:
        yield "", _changed(value, hint)


def _tuple_variants(value: tuple[Any, ...], hint: Any) -> Iterator[tuple[str, Any]]:
    args = [a for a in typing.get_args(_non_none(hint))]
    homogeneous = len(args) == 2 and args[1] is Ellipsis
    for i, item in enumerate(value):
        item_hint = args[0] if homogeneous else (args[i] if i < len(args) else type(item))
        for path, changed in variants(item, item_hint):
            yield f"[{i}]{'.' + path if path else ''}", (*value[:i], changed, *value[i + 1 :])
    if homogeneous:
        yield "[+]", (*value, sample(args[0]))


def _non_none(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return options[0]
    return hint


def _changed(value: Any, hint: Any) -> Any:
    if value is None:
        return sample(_non_none(hint))
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "~"
    if isinstance(value, Version):
        return Version(f"{value}.9")
    if isinstance(value, Path):
        return value / "x"
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, Condition):
        return parse_condition({"cuda": ">=99"}) if str(value) != "cuda >=99" else parse_condition({"gcc": "<1"})
    if isinstance(value, SpecifierSet):
        return SpecifierSet(f"{value},!=0.0.1")
    raise AssertionError(f"no way to change a {type(value).__name__}: teach the protocol test")


def sample(hint: Any) -> Any:
    """A value of the declared type, to put where there was none (None, or an empty tuple)."""
    hint = _non_none(hint)
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        return (sample(args[0]),) if len(args) == 2 and args[1] is Ellipsis else tuple(sample(a) for a in args)
    if origin is dict:
        return {"k": "v"}
    if origin is typing.Literal:
        return typing.get_args(hint)[0]
    cstdint = CATALOG.patch("cstdint")
    samples: dict[Any, Any] = {
        str: "x",
        int: 1,
        bool: True,
        Path: Path("/x"),
        Version: Version("1.0"),
        Condition: parse_condition({"cuda": ">=99"}),
        Repo: Repo("https://example.invalid/r", "0" * 40, True),
        Patch: cstdint,
        PatchUse: PatchUse(patch=cstdint),
        PatchSet: PatchSet(".", None, (PatchUse(patch=cstdint),)),
        Extension: CATALOG.extension("canary"),
        Build: Build("x", ".", CATALOG.extension("canary")),
        Recipe: CATALOG.recipe("canary"),
        Asset: Asset(name="x", path="x", kind="file", gated=False, source="x"),
        Locked: Locked((LOCKED,), ("chumpy",), "/x/pylock.x.toml"),
        LockedPackage: LOCKED,
        Artifact: LOCKED.artifact,
        datetime: datetime(2026, 1, 1, tzinfo=timezone.utc),
    }
    if hint in samples:
        return samples[hint]
    raise AssertionError(f"no sample of {hint}: teach the protocol test")
