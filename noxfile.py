"""Test matrix.

- `tests`: the suite on Python 3.10-3.13 (the full canary and fixture builds run in .ci/run and
  in `compile`, not once per Python);
- `compile`: CUDA {12.8, 12.9, 13.0, newest 13.x} x Python {3.11, 3.12}: builds the canary and
  the fixture extensions for sm_120 with a torch of the toolkit's CUDA major, through envbuilder
  itself. CUDA 13.x is provisioned from PyPI when the host lacks it; a session skips, saying why,
  only when its toolkit can be neither found nor provisioned (CUDA 12.x comes from a system
  install: see README, "CUDA 12.x in CI").
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]

NEWEST_13 = "13.5"  # the newest cuda-toolkit release on PyPI when this was written
TORCH = {  # a torch of each CUDA major: what `compile` builds against
    12: ["torch==2.9.1", "--index-url", "https://download.pytorch.org/whl/cu128", "--extra-index-url", "https://pypi.org/simple"],
    13: ["torch>=2.11,<2.15"],
}
FIXTURES = Path("tests/fixtures/data")


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    session.install(".[test]")
    session.run("pytest", "-m", "not build", *session.posargs)


@nox.session(python=["3.11", "3.12"])
@nox.parametrize("cuda", ["12.8", "12.9", "13.0", NEWEST_13])
def compile(session: nox.Session, cuda: str) -> None:
    session.install(".")
    major = int(cuda.split(".")[0])
    work = Path(session.create_tmp()) / f"cuda-{cuda}"
    shutil.rmtree(work, ignore_errors=True)
    env = {"ENVBUILDER_HOME": str(work / "home"), "ENVBUILDER_CACHE": str(work / "cache")}
    if major >= 13:
        session.run("envbuilder", "toolkit", "install", cuda, env=env)
    toolkits = json.loads(session.run("envbuilder", "toolkit", "list", "--json", env=env, silent=True))
    if not any(t["version"].startswith(cuda + ".") for t in toolkits):
        session.skip(f"CUDA {cuda} is not installed on this host, and CUDA 12.x cannot be provisioned from PyPI (README: CUDA 12.x in CI)")
    # torch once per session, shared by both builds through --system-site-packages
    session.install(*TORCH[major])
    python = shutil.which("python", path=session.bin)
    common = ["--arch", "12.0", "--cuda", cuda, "--python", str(python), "--system-site-packages", "--installer", "pip"]
    builds = session.posargs or ["canary", "fixtures"]  # `nox -s … -- canary` builds only the canary
    if "canary" in builds:
        session.run("envbuilder", "build", "canary", *common, "--prefix", str(work / "canary"), env=env)
    if "fixtures" in builds:
        session.run("envbuilder", "build", "fixture-exts", "--recipes", str(FIXTURES), *common, "--prefix", str(work / "fixtures"), env=env)
    for prefix in (work / name for name in builds):
        manifest = json.loads((prefix / "envbuilder.manifest.json").read_text())
        assert manifest["toolchain"]["nvcc"].startswith(cuda), manifest["toolchain"]
        for binary in manifest["verify"]["binaries"]:
            assert binary["runs_on"] == {"12.0": "sass"}, binary
        session.log(f"{prefix.name}: nvcc {manifest['toolchain']['nvcc']}, torch {manifest['torch']['version']}: sm_120 SASS in every .so")
    if os.environ.get("CI"):
        shutil.rmtree(work, ignore_errors=True)  # several GB of venvs


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install(".[dev]")
    session.run("ruff", "check", "envbuilder", "tests")
    session.run("ruff", "format", "--check", "envbuilder", "tests")
    session.run("mypy")
