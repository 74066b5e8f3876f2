"""Speed target: `envbuilder build canary --bundle DIR`, its extension wheel in the bundle, takes
under 30 s plus the torch install, with no network.

Set-up (not timed): lock the canary, build it `--locked` (its extension wheel lands in the wheel
cache, compiled once and then reused), and bundle the lock. Timed: `build canary --bundle` into a
fresh prefix with an empty cache and home, inside `unshare -n` when this host can make a network
namespace (else it says so and runs with the network). The wheels step is where torch and its
nvidia-* wheels are installed; the target is on everything else.
Usage: python benchmarks/bench_bundle.py [--runs 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 30.0


def cli(*args: str, env: dict[str, str] | None = None, wrap: list[str] = ()) -> subprocess.CompletedProcess[str]:
    argv = [*wrap, sys.executable, "-m", "envbuilder", *args]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def offline_wrapper() -> list[str]:
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    print("note: unshare -n is not available here: the timed build runs with the network")
    return []


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--work", type=Path, help="keep the lock and bundle here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="envbuilder-bench-bundle-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")
    lock, bundle = work / "pylock.canary.toml", work / "bundle" / "canary"
    started = time.perf_counter()
    if not lock.exists():
        cli("lock", "canary", "--arch", "12.0", "-o", str(lock))
    cli("build", "canary", "--arch", "12.0", "--locked", str(lock), "--prefix", str(work / "locked"), "--no-smoke")
    if not bundle.exists():
        made = cli("bundle", "canary", "--locked", str(lock), "--output", str(bundle))
        print(made.stdout.strip().splitlines()[-1] if made.stdout.strip() else "")
    print(f"set-up (lock, build --locked, bundle): {time.perf_counter() - started:.0f} s")
    wrap = offline_wrapper()
    totals, rest = [], []
    for run in range(args.runs):
        fresh = work / f"run{run}"
        shutil.rmtree(fresh, ignore_errors=True)
        env = {"ENVBUILDER_CACHE": str(fresh / "cache"), "ENVBUILDER_HOME": str(fresh / "home")}
        started = time.perf_counter()
        done = cli(
            "build", "canary", "--bundle", str(bundle), "--prefix", str(fresh / "env"), "--json", env=env, wrap=wrap
        )
        total = time.perf_counter() - started
        steps = {s["name"]: s.get("seconds") or 0.0 for s in json.loads(done.stdout)["steps"]}
        cached = next(
            e["cache"] for e in json.loads((fresh / "env" / "envbuilder.manifest.json").read_text())["extensions"]
        )
        totals.append(total)
        rest.append(total - steps.get("wheels", 0.0))
        print(
            f"run {run + 1}: {total:.1f} s, wheels (torch) {steps.get('wheels', 0):.1f} s, extensions "
            f"{steps.get('extensions', 0):.1f} s (wheel: {cached}), everything but the wheels {rest[-1]:.1f} s"
        )
        assert cached != "cached", "the extension was compiled, not taken from the bundle"
        shutil.rmtree(fresh, ignore_errors=True)
    median = statistics.median(rest)
    print(
        f"build --bundle canary: median {statistics.median(totals):.1f} s, of which not torch {median:.1f} s "
        f"(target < {TARGET_S:.0f} s plus the torch install)"
    )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
