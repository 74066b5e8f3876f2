"""`envbuilder matrix` and the GitHub workflow that consumes it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from envbuilder import matrix
from envbuilder.recipe.catalog import Catalog

from helpers import run_cli

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "envbuilder.yml"


def test_rows_follow_the_recipes():
    catalog = Catalog.default()
    rows = matrix.rows([catalog.recipe("cap4d"), catalog.recipe("canary")], "12.0")
    cap4d = [r for r in rows if r["recipe"] == "cap4d"]
    assert {(r["cuda"], r["python"]) for r in cap4d} == {("12.8", "3.12"), ("13.0", "3.12")}  # python: "3.12"
    canary = [r for r in rows if r["recipe"] == "canary"]
    assert len(canary) == 2 * 4  # cu128/cu130 x Python 3.10-3.13
    assert all(r["toolkit"] == ("envbuilder" if r["cuda"].startswith("13") else "image") for r in rows)
    assert next(r for r in rows if r["cuda"] == "12.8")["image"] == "nvidia/cuda:12.8.1-devel-ubuntu24.04"


def test_cli_formats():
    github = run_cli("matrix", "4dgaussians", "--format", "github", "--name", "m", "--cuda", "13.0")
    name, _, payload = github.stdout.strip().partition("=")
    assert name == "m"
    assert json.loads(payload)["include"] == [
        {
            "recipe": "4dgaussians",
            "cuda": "13.0",
            "torch": "cu130",
            "python": "3.12",
            "arch": "12.0",
            "toolkit": "envbuilder",
            "image": None,
        }
    ]
    rows = json.loads(run_cli("matrix", "--format", "json", "--arch", "9.0;12.0").stdout)
    assert {r["recipe"] for r in rows} >= {
        "4dgaussians",
        "talkinggaussian",
        "gaussiantalker",
        "cap4d",
        "disco4d",
        "canary",
    }
    assert {r["arch"] for r in rows} == {"9.0;12.0"}


def test_workflow_uses_the_matrix():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    steps = " ".join(str(s.get("run", "")) for s in jobs["matrix"]["steps"])
    assert "envbuilder matrix --format github --name cuda13" in steps and "--name cuda12" in steps
    for job, output in (("build-cuda13", "cuda13"), ("build-cuda12", "cuda12")):
        assert jobs[job]["strategy"]["matrix"] == f"${{{{ fromJSON(needs.matrix.outputs.{output}) }}}}"
        runs = " ".join(str(s.get("run", "")) for s in jobs[job]["steps"])
        for field in ("recipe", "arch", "cuda", "python"):
            assert f"matrix.{field}" in runs
        assert "|| [ $? -eq 3 ]" in runs  # built but blocked on a licensed asset is not a failure
    assert jobs["build-cuda12"]["container"] == "${{ matrix.image }}"
    assert "envbuilder toolkit install" in " ".join(str(s.get("run", "")) for s in jobs["build-cuda13"]["steps"])
