from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from envbuilder.host.toolchain import find_toolkits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))

from helpers import run_cli  # noqa: E402 - helpers lives beside this file


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Envs and caches of tests never land in the user's ~/.local or ~/.cache."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("ENVBUILDER_HOME", str(base / "envbuilder-home"))
    monkeypatch.setenv("ENVBUILDER_CACHE", str(base / "envbuilder-cache"))
    monkeypatch.delenv("ENVBUILDER_PATH", raising=False)
    # nor the user's registry credentials or shared cache
    monkeypatch.setenv("DOCKER_CONFIG", str(base / "no-docker-config"))
    for name in (
        "ENVBUILDER_REGISTRY_USERNAME",
        "ENVBUILDER_REGISTRY_PASSWORD",
        "ENVBUILDER_CACHE_REMOTE",
        "ENVBUILDER_CACHE_INSECURE",
    ):
        monkeypatch.delenv(name, raising=False)


def _sm120_toolkit():
    return next((t for t in find_toolkits() if 120 in t.sm_codes and not t.problems), None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need nvcc carry the `nvcc` marker, so a skip without one shows in -m listings."""
    for item in items:
        if "cuda" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("nvcc"):
            item.add_marker(pytest.mark.nvcc)


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


@pytest.fixture
def registry(tmp_path: Path):
    """Debian's docker-registry (distribution 2.8) on a free 127.0.0.1 port, htpasswd auth (user
    alice), storage in tmp_path. CI sets ENVBUILDER_REQUIRE_REGISTRY=1: a missing registry fails
    there instead of skipping."""
    from registry import RegistryServer, missing_reason

    reason = missing_reason()
    if reason:
        if os.environ.get("ENVBUILDER_REQUIRE_REGISTRY"):
            pytest.fail(reason + "; ENVBUILDER_REQUIRE_REGISTRY=1 demands it")
        pytest.skip(reason)
    server = RegistryServer(tmp_path / "registry").start()
    try:
        yield server
    finally:
        server.stop()


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
