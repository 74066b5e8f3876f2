"""A real `envbuilder build canary --arch 12.0`: venv, CUDA torch, nvcc compile for sm_120,
fatbin check, import, manifest; then a no-op rebuild and a rebuild for a second arch.

The env lives under a path containing "research": torch would silently drop the -gencode flags
there (any nvcc flag containing "arch"), so this also proves envbuilder's workaround."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from envbuilder import fatbin

from helpers import STEPS, run_cli

pytestmark = [pytest.mark.build, pytest.mark.compile]


def manifest(prefix: Path) -> dict:
    return json.loads((prefix / "envbuilder.manifest.json").read_text())


def installed_so(prefix: Path) -> Path:
    m = manifest(prefix)
    (so,) = m["extensions"][0]["so_files"]
    return Path(m["venv"]["platlib"]) / so


def test_manifest_records_a_verified_env(canary_env):
    assert "research" in str(canary_env)
    m = manifest(canary_env)
    assert m["archs"] == ["12.0"] and m["build_env"]["TORCH_CUDA_ARCH_LIST"] == "12.0"
    assert m["torch"]["cuda"].startswith("13.") and "torch" in m["packages"]
    assert m["verify"]["binaries"][0]["runs_on"] == {"12.0": "sass"}
    assert m["verify"]["imports"]["envbuilder_canary"]["ok"] is True
    assert m["toolchain"]["nvcc"].startswith("13.")
    assert set(m["steps"]) == set(STEPS)


def test_installed_binary_holds_sm120_sass(canary_env):
    so = installed_so(canary_env)
    assert fatbin.inspect_file(so).sass == ["sm_120"]
    result = run_cli("inspect", str(so), "--arch", "12.0")
    assert result.returncode == 0 and "yes (SASS)" in result.stdout


def test_module_imports_in_the_env(canary_env):
    out = subprocess.run(
        [
            str(canary_env / "venv/bin/python"),
            "-c",
            "import envbuilder_canary as c; print(c.nvcc_version(), c.cplusplus)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith("13")  # compiled by CUDA 13 nvcc
    assert int(out[1]) >= 201703


def test_second_build_does_no_work(canary_env):
    result = run_cli("build", "canary", "--arch", "12.0", "--prefix", str(canary_env), "--installer", "pip", "--json")
    assert result.returncode == 0, result.stderr
    status = {s["name"]: s["status"] for s in json.loads(result.stdout)["steps"]}
    assert set(status.values()) == {"skipped", "checked"} and status["assets"] == "checked"


def test_rebuild_for_two_archs_recompiles_only_the_extension(canary_env):
    result = run_cli(
        "build", "canary", "--arch", "9.0;12.0", "--prefix", str(canary_env), "--installer", "pip", "--json"
    )
    assert result.returncode == 0, result.stderr
    status = {s["name"]: s["status"] for s in json.loads(result.stdout)["steps"]}
    assert status == {
        "toolchain": "skipped",
        "sources": "skipped",
        "venv": "skipped",
        "wheels": "skipped",
        "patches": "skipped",
        "extensions": "done",
        "verify": "done",
        "assets": "checked",
        "smoke": "done",  # the canary has none: it records that (its key follows verify's)
        "manifest": "done",
    }
    assert fatbin.inspect_file(installed_so(canary_env)).sass == ["sm_90", "sm_120"]
    assert manifest(canary_env)["archs"] == ["9.0", "12.0"]
