"""The planner is pure: recipe + host facts + options -> Plan, or a clear error before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envbuilder.errors import CompatError, InputError, ToolNotFound
from envbuilder.plan import Options, make_plan
from envbuilder.recipe.catalog import Catalog

from helpers import STEPS, host, toolkit

CANARY = Catalog.default().recipe("canary")


def plan(h=None, **options):
    return make_plan(CANARY, h or host(), Options(**{"arch": "12.0", **options}))


def test_plan_resolves_everything():
    p = plan(prefix=Path("/tmp/x"))
    assert p.torch_cuda_arch_list == "12.0"
    assert p.toolkit.release.public == "13.0"
    assert p.torch.tag == "cu130"
    assert p.build_env == {"CUDA_HOME": "/opt/fake-cuda", "TORCH_CUDA_ARCH_LIST": "12.0", "MAX_JOBS": "8"}
    assert [s.name for s in p.steps] == STEPS
    data = json.loads(json.dumps(p.to_json()))
    assert data["provenance"]["arch"] == "--arch"
    assert data["steps"][5]["inputs"]["build_env"]["TORCH_CUDA_ARCH_LIST"] == "12.0"


def test_plan_is_deterministic_and_keys_follow_inputs():
    a, b = plan(), plan()
    assert [s.key for s in a.steps] == [s.key for s in b.steps]
    c = plan(arch="9.0;12.0")
    changed = {s.name for s, t in zip(a.steps, c.steps, strict=True) if s.key != t.key}
    assert changed == {"extensions", "verify", "smoke", "manifest"}  # a new arch list keeps the venv and torch
    d = plan(source_digest="other")
    assert {s.name for s, t in zip(a.steps, d.steps, strict=True) if s.key != t.key} == {
        "sources",
        "patches",
        "extensions",
        "verify",
        "assets",
        "smoke",
        "manifest",
    }
    # the canary has no smoke run: smoke options change nothing
    for e in (plan(smoke=False), plan(stub_assets=True)):
        assert [s.key for s in a.steps] == [s.key for s in e.steps]


def test_smoke_options_change_only_the_smoke_step():
    recipe = Catalog.default().recipe("4dgaussians")
    h = host(tools={"git": "/usr/bin/git"})
    base = make_plan(recipe, h, Options(arch="12.0"))
    assert "no GPU here" in base.step("smoke").summary
    for options in (Options(arch="12.0", smoke=False), Options(arch="12.0", stub_assets=True)):
        other = make_plan(recipe, h, options)
        changed = {s.name for s, t in zip(base.steps, other.steps, strict=True) if s.key != t.key}
        assert changed == {"smoke", "manifest"}
    assert "--no-smoke" in make_plan(recipe, h, Options(arch="12.0", smoke=False)).step("smoke").summary


def test_newest_fitting_toolkit_is_chosen():
    h = host(
        toolkits=[toolkit("13.0.88", "/cuda-13"), toolkit("12.8.93", "/cuda-12.8"), toolkit("12.6.3", "/cuda-12.6")]
    )
    assert plan(h).toolkit.root == Path("/cuda-13")
    p = plan(h, cuda="12.8")
    assert p.toolkit.root == Path("/cuda-12.8") and p.torch.tag == "cu128"


def test_no_nvcc():
    with pytest.raises(ToolNotFound, match="no CUDA toolkit found"):
        plan(host(toolkits=[]))


def test_nvcc_too_old_for_the_arch():
    with pytest.raises(CompatError, match=r"needs CUDA >= 12.8, but nvcc is 12.6") as info:
        plan(host(toolkits=[toolkit("12.6.3")]))
    assert info.value.exit_code == 2
    with pytest.raises(CompatError, match="needs CUDA >= 12.8"):
        plan(host(toolkits=[toolkit("13.0.88"), toolkit("12.6.3", "/c126")]), cuda="12.6")


def test_requested_cuda_missing():
    with pytest.raises(InputError, match=r"no CUDA 12.9 toolkit on this machine \(found: 13.0.88"):
        plan(cuda="12.9")


def test_arch_dropped_by_cuda13():
    with pytest.raises(CompatError, match="last toolkit that compiles it is 12.9"):
        plan(arch="6.0")


def test_torch_cuda_major_differs_from_nvcc(tmp_path):
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    (recipe_dir / "old.yaml").write_text(
        "name: old\nsummary: x\nsource: {path: .}\npython: '>=3.9'\ntorch:\n  cu128: {torch: '==2.9.1'}\n"
    )
    recipe = Catalog.default([tmp_path]).recipe("old")
    with pytest.raises(CompatError, match="torch refuses to build extensions when the CUDA major versions differ"):
        make_plan(recipe, host(), Options(arch="12.0"))


def test_torch_pin_too_old_for_arch(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "old.yaml").write_text(
        "name: old\nsummary: x\nsource: {path: .}\npython: '>=3.9'\ntorch:\n  cu130: {torch: '<2.7'}\n"
    )
    with pytest.raises(CompatError, match="needs torch >= 2.7"):
        make_plan(Catalog.default([tmp_path]).recipe("old"), host(), Options(arch="12.0"))


def test_torch_floor_added_for_the_arch(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "any.yaml").write_text(
        "name: any\nsummary: x\nsource: {path: .}\npython: '>=3.9'\ntorch:\n  cu130: {torch: '>=2.0'}\n"
    )
    p = make_plan(Catalog.default([tmp_path]).recipe("any"), host(), Options(arch="12.0"))
    assert "torch<2.7" not in p.step("wheels").inputs["torch"][0]
    assert p.step("wheels").inputs["torch"] == ["torch>=2.0,>=2.7"]


def test_gcc_too_new_picks_an_older_one_or_fails():
    h = host(toolkits=[toolkit("12.8.93")], compilers=[("g++", "15.1.0"), ("g++-14", "14.2.0"), ("g++-13", "13.3.0")])
    p = plan(h)
    assert p.compiler.name == "g++-14"
    assert p.build_env["NVCC_PREPEND_FLAGS"] == "-ccbin /usr/bin/g++-14"
    assert "too new" in p.provenance["compiler"]
    with pytest.raises(CompatError, match="gcc 15.1.0 is too new for CUDA 12.8"):
        plan(host(toolkits=[toolkit("12.8.93")], compilers=[("g++", "15.1.0")]))
    with pytest.raises(ToolNotFound, match="no C\\+\\+ compiler"):
        plan(host(compilers=[]))


def test_python_choice():
    h = host(
        pythons=[
            ("/a/python3.13", "3.13.0", "pyenv"),
            ("/b/python3.10", "3.10.13", "pyenv"),
            ("/c/python", "3.11.7", "running envbuilder"),
        ]
    )
    assert str(plan(h).interpreter.path) == "/c/python"  # the running one, when the recipe allows it
    assert str(plan(h, python="3.13").interpreter.path) == "/a/python3.13"
    with pytest.raises(InputError, match=r"no Python 3.9 found \(found: 3.10.13, 3.11.7, 3.13.0\)"):
        plan(h, python="3.9")
    with pytest.raises(CompatError, match="needs Python"):
        plan(host(pythons=[("/x/python3.8", "3.8.18", "pyenv")]))


def test_arch_from_gpus_or_error():
    from envbuilder.host.gpu import Gpu

    h = host(gpus=(Gpu(0, "NVIDIA GeForce RTX 5090", "12.0", "580.1", 32607),))
    p = make_plan(CANARY, h, Options())
    assert p.torch_cuda_arch_list == "12.0" and "GPU" in p.provenance["arch"]
    with pytest.raises(InputError, match="no --arch given and no GPU"):
        make_plan(CANARY, host(), Options())


def test_jobs_and_installer():
    assert plan(jobs=3).jobs == 3
    with pytest.raises(InputError, match="at least 1"):
        plan(jobs=0)
    assert plan(host(tools={"git": "/g", "uv": "/u"})).installer == "uv"
    assert plan().installer == "pip"  # auto: uv only when the host has one
    # --installer uv needs none on PATH: envbuilder installs its own into its tools venv
    assert plan(installer="uv").installer == "uv"


def test_glibc_warning():
    assert plan(host(toolkits=[toolkit("12.8.93")], glibc="2.41")).warnings
    assert not plan(host(glibc="2.41")).warnings


def test_smoke_runs_without_a_data_generator_are_not_possible_yet():
    h = host(tools={"git": "/usr/bin/git"})
    later = Path(__file__).parent / "fixtures" / "data"
    summary = make_plan(Catalog.default([later]).recipe("later-data"), h, Options(arch="12.0")).step("smoke").summary
    assert summary.startswith("not possible yet") and "no synthetic 'talking-head-v9' data generator" in summary
    for name in ("4dgaussians", "talkinggaussian", "gaussiantalker"):
        assert (
            "not possible"
            not in make_plan(Catalog.default().recipe(name), h, Options(arch="12.0")).step("smoke").summary
        )


def test_an_extensions_run_time_needs_join_the_wheels_step():
    # kaolin's wheel installs with --no-deps; `import kaolin` needs warp-lang and pygltflib (found on the H100)
    kaolin = Catalog.default().extension("kaolin")
    assert {"warp-lang", "pygltflib"} <= {r.split(">")[0].split("=")[0] for r in kaolin.requires}
    p = make_plan(Catalog.default().recipe("disco4d"), host(tools={"git": "/usr/bin/git"}), Options(arch="12.0"))
    wanted = p.step("wheels").inputs["requirements"]
    assert set(kaolin.requires) <= set(wanted)
