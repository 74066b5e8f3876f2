from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envbuilder.host.toolchain import find_toolkits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Envs and caches of tests never land in the user's ~/.local or ~/.cache."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("ENVBUILDER_HOME", str(base / "envbuilder-home"))
    monkeypatch.setenv("ENVBUILDER_CACHE", str(base / "envbuilder-cache"))
    monkeypatch.delenv("ENVBUILDER_PATH", raising=False)


def _sm120_toolkit():
    return next((t for t in find_toolkits() if 120 in t.sm_codes and not t.problems), None)


@pytest.fixture(scope="session")
def cuda():
    """A CUDA toolkit that can compile sm_120. CI sets ENVBUILDER_REQUIRE_COMPILE=1, which turns
    a missing toolkit into a failure, so compile tests are never skipped silently there."""
    toolkit = _sm120_toolkit()
    if toolkit is None:
        reason = "no nvcc >= 12.8 on this machine (install CUDA 13.0 or set CUDA_HOME)"
        if os.environ.get("ENVBUILDER_REQUIRE_COMPILE"):
            pytest.fail(reason + "; ENVBUILDER_REQUIRE_COMPILE=1 demands it")
        pytest.skip(reason)
    return toolkit


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "envbuilder", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def canary_env(tmp_path_factory: pytest.TempPathFactory, cuda) -> Path:
    """One real `envbuilder build canary --arch 12.0` for the whole session (venv, CUDA torch
    from the package index, nvcc compile for sm_120, verify, manifest)."""
    base = tmp_path_factory.mktemp("canary")
    prefix = base / "research" / "canary-env"  # a path with "arch" in it: see test_build.py
    env = {"ENVBUILDER_HOME": str(base / "home"), "ENVBUILDER_CACHE": str(base / "cache")}
    result = run_cli(
        "build", "canary", "--arch", "12.0", "--prefix", str(prefix), "--installer", "pip", "--json", env=env
    )
    if result.returncode != 0:
        pytest.fail(f"canary build failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return prefix


def has_git() -> bool:
    return shutil.which("git") is not None
