"""kill -9 at random points of a real canary build, ten times: the next build completes and
verifies every time. envbuilder itself is SIGKILLed (its pip/nvcc children are orphaned on
purpose, as they would be), so this also exercises the reaping of leftover processes.

The builds reuse the canary env's torch (--system-site-packages) and start from a copy of its wheel
cache (same extension key), so each round costs a venv and, in the round that empties the cache,
a compile. ENVBUILDER_KILL_SEED reproduces a run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envbuilder import fatbin

from helpers import run_cli

pytestmark = [pytest.mark.build, pytest.mark.compile]
ROUNDS = 10
COLD_ROUNDS = {0}  # rounds that start with an empty wheel cache, so that the kill can hit the compile


def build_args(canary_env: Path, prefix: Path) -> list[str]:
    return ["build", "canary", "--arch", "12.0", "--python", str(canary_env / "venv/bin/python"),
            "--system-site-packages", "--installer", "pip", "--prefix", str(prefix), "--json"]  # fmt: skip


def timed_build(args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return time.monotonic() - started


def assert_verified(prefix: Path) -> None:
    m = json.loads((prefix / "envbuilder.manifest.json").read_text())
    assert m["verify"]["imports"]["envbuilder_canary"]["ok"]
    (so,) = m["extensions"][0]["so_files"]
    assert fatbin.inspect_file(Path(m["venv"]["platlib"]) / so).sass == ["sm_120"]
    subprocess.run([str(prefix / "venv/bin/python"), "-c", "import envbuilder_canary"], check=True)


def test_kill_9_at_random_points_then_resume(canary_env, tmp_path):
    seed = int(os.environ.get("ENVBUILDER_KILL_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    print(f"ENVBUILDER_KILL_SEED={seed}")
    prefix, cache = tmp_path / "env", tmp_path / "cache"
    env = {"ENVBUILDER_CACHE": str(cache), "ENVBUILDER_HOME": str(tmp_path / "home")}
    args = build_args(canary_env, prefix)
    shutil.copytree(canary_env.parent.parent / "cache", cache)  # holds the canary's compiled wheel
    warm = timed_build(args, env)
    compiled = json.loads((canary_env / "envbuilder.manifest.json").read_text())["extensions"][0]["build_seconds"]
    cold = warm + compiled
    killed_in = []
    for round_ in range(ROUNDS):
        # every round starts from nothing built in the prefix, so the kill lands in real work
        shutil.rmtree(prefix, ignore_errors=True)
        if round_ in COLD_ROUNDS:
            shutil.rmtree(cache, ignore_errors=True)
        horizon = cold if round_ in COLD_ROUNDS else warm
        child = subprocess.Popen([sys.executable, "-m", "envbuilder", *args], env={**os.environ, **env},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.2, horizon))
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = (
            json.loads((prefix / ".envbuilder/state.json").read_text())
            if (prefix / ".envbuilder/state.json").exists()
            else {}
        )
        killed_in.append(
            next((n for n, r in state.get("steps", {}).items() if r["status"] == "running"), "between steps")
        )
        result = run_cli(*args, env=env)
        assert result.returncode == 0, (
            f"round {round_} (killed in {killed_in[-1]}, seed {seed}):\n{result.stderr[-3000:]}"
        )
        assert_verified(prefix)
    print("killed in:", killed_in)
