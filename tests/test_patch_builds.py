"""Real builds of the fixture extensions (nvcc, the CUDA torch of the canary env, sm_120):
unpatched they fail with the right diagnosis; with the recipe's patches they build and import.

The builds reuse the canary env's torch (--python <its venv> --system-site-packages), so each
costs a venv and a compile, not another torch install."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from envbuilder import fatbin, patching

from helpers import run_cli

pytestmark = [pytest.mark.build, pytest.mark.compile]
FIXTURES = Path(__file__).parent / "fixtures" / "data"


def build(recipe: str, canary_env: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "build", recipe, "--recipes", str(FIXTURES), "--arch", "12.0",
        "--python", str(canary_env / "venv/bin/python"), "--system-site-packages",
        "--installer", "pip", "--prefix", str(prefix), "--json",
    )  # fmt: skip


def diagnoses(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {d["id"] for d in json.loads(result.stdout).get("diagnoses", [])}


def canary_torch_standard(canary_env: Path) -> str:
    torch_file = json.loads((canary_env / "envbuilder.manifest.json").read_text())["torch"]["file"]
    return patching.torch_cxx_standard(Path(torch_file).parent) or "?"


def test_patched_fixtures_build_and_import(canary_env, tmp_path):
    result = build("fixture-exts", canary_env, tmp_path / "env")
    assert result.returncode == 0, result.stderr
    m = json.loads((tmp_path / "env/envbuilder.manifest.json").read_text())
    status = {p["patch"]: p["status"] for p in m["patches"]}
    assert status == {"cxx-standard": "applied", "cfloat": "applied", "cstdint": "applied"}
    standard = canary_torch_standard(canary_env)
    assert m["cxx_standard"] == standard
    setup = (tmp_path / "env/src/fixture-exts/cxx14/setup.py").read_text()
    assert f'"-std={standard}"' in setup and '"-std=c++14"' not in setup  # the comment keeps its text
    assert {b["extension"]: b["runs_on"]["12.0"] for b in m["verify"]["binaries"]} == dict.fromkeys(
        ("fixture-cxx14", "fixture-cfloat", "fixture-cstdint"), "sass"
    )
    for b in m["verify"]["binaries"]:
        assert fatbin.inspect_file(Path(m["venv"]["platlib"]) / b["file"]).sass == ["sm_120"]
    assert all(r["ok"] for r in m["verify"]["imports"].values())


def test_unpatched_cxx14_fails_with_the_cxx_diagnosis(canary_env, tmp_path):
    result = build("fixture-raw-cxx14", canary_env, tmp_path / "env")
    assert result.returncode == 1
    expected = {"c++17": "cxx17-required", "c++20": "cxx20-required"}[canary_torch_standard(canary_env)]
    assert expected in diagnoses(result)
    assert not (tmp_path / "env/envbuilder.manifest.json").exists()


def test_unpatched_cfloat_fails_with_the_flt_max_diagnosis(canary_env, tmp_path):
    result = build("fixture-raw-cfloat", canary_env, tmp_path / "env")
    assert result.returncode == 1
    assert "flt-max-undefined" in diagnoses(result)


def test_unpatched_cstdint_fails_with_the_cstdint_diagnosis(canary_env, tmp_path):
    result = build("fixture-raw-cstdint", canary_env, tmp_path / "env")
    assert result.returncode == 1
    assert "cstdint-missing" in diagnoses(result)
