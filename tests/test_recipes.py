"""The five method recipes: they load, every name they use resolves, and they plan for an RTX 50xx
with CUDA 12.8 and 13.0 (on a described host: plans are pure)."""

from __future__ import annotations

import pytest
from packaging.version import Version

from envbuilder.errors import InputError
from envbuilder.plan import Options, make_plan
from envbuilder.recipe.catalog import Catalog
from envbuilder.recipe.model import GitSource

from helpers import host, toolkit

METHODS = ["4dgaussians", "talkinggaussian", "gaussiantalker", "cap4d", "disco4d"]
CATALOG = Catalog.default()
BLACKWELL_HOST = host(
    toolkits=[toolkit("13.0.88", "/usr/local/cuda-13.0"), toolkit("12.8.93", "/usr/local/cuda-12.8")],
    compilers=[("g++", "13.3.0")],
    pythons=[("/usr/bin/python3.12", "3.12.3", "PATH"), ("/usr/bin/python3.11", "3.11.9", "PATH")],
)


@pytest.mark.parametrize("name", METHODS)
def test_recipe_is_complete(name):
    """What the loader cannot know: a shipped method is a pinned git repository that builds on
    Python 3.12 for both CUDA 12.8 and 13.0, with extensions, a smoke run and notes. (Commit
    length, unique asset names, gated => registration and no URL are the loader's job.)"""
    recipe = CATALOG.recipe(name)
    assert isinstance(recipe.source, GitSource)
    assert recipe.python.contains("3.12.3")
    assert {v.tag for v in recipe.torch} == {"cu128", "cu130"}
    assert recipe.extensions and recipe.smoke and recipe.notes


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(("cuda", "tag"), [("12.8", "cu128"), ("13.0", "cu130")])
def test_recipe_plans_for_blackwell(name, cuda, tag):
    plan = make_plan(CATALOG.recipe(name), BLACKWELL_HOST, Options(arch="12.0", cuda=cuda))
    assert plan.torch.tag == tag
    assert plan.interpreter.version >= Version("3.12")
    assert plan.torch_cuda_arch_list == "12.0"
    wheels = plan.step("wheels").inputs
    assert any(r.startswith("torch") for r in wheels["torch"])
    assert [e["name"] for e in plan.step("extensions").inputs["extensions"]]


@pytest.mark.parametrize("name", METHODS)
def test_plan_for_a_missing_toolkit_is_a_plan_only_warning(name):
    only13 = host(toolkits=[toolkit("13.0.88")], pythons=[("/usr/bin/python3.12", "3.12.3", "PATH")])
    plan = make_plan(CATALOG.recipe(name), only13, Options(arch="12.0", cuda="12.8", plan_only=True))
    assert plan.torch.tag == "cu128" and any("not installed here" in w for w in plan.warnings)
    with pytest.raises(InputError, match="no CUDA 12.8 toolkit"):
        make_plan(CATALOG.recipe(name), only13, Options(arch="12.0", cuda="12.8"))


def test_4dgaussians_has_a_fallback_for_the_missing_rasterizer_commit():
    source = CATALOG.recipe("4dgaussians").source
    assert source.fallbacks[0].path == "submodules/depth-diff-gaussian-rasterization"
    assert source.fallbacks[0].commit.startswith("9055fcf")


def test_every_extension_and_patch_spec_loads():
    for path in sorted((CATALOG.roots[-1].extensions).glob("*/extension.yaml")):
        CATALOG.extension(path.parent.name)
    for name in CATALOG.patch_names():
        CATALOG.patch(name)
