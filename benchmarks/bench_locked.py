"""Speed target: a re-run of `envbuilder build canary --locked LOCK` on a finished env takes under 1 s.

Set-up (not timed): lock the canary and build it `--locked` once. Timed: N re-runs of the same
command, each a child process as a user types it; every step must report skipped or checked
(nothing rebuilt). Usage: python benchmarks/bench_locked.py [--runs 5] [--work DIR]
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

TARGET_S = 1.0


# An installed envbuilder has its .pyc files; a PYTHONDONTWRITEBYTECODE shell would time compiling.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "envbuilder", *args], capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, help="keep the lock and env here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="envbuilder-bench-locked-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")
    lock, prefix = work / "pylock.canary.toml", work / "env"
    if not lock.exists():
        cli("lock", "canary", "--arch", "12.0", "-o", str(lock))
    build = ["build", "canary", "--arch", "12.0", "--locked", str(lock), "--prefix", str(prefix), "--json"]
    started = time.perf_counter()
    cli(*build)
    print(f"set-up build --locked: {time.perf_counter() - started:.0f} s")
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        done = cli(*build)
        times.append(time.perf_counter() - started)
        statuses = {s["name"]: s["status"] for s in json.loads(done.stdout)["steps"]}
        redone = sorted(n for n, s in statuses.items() if s not in ("skipped", "checked"))
        assert not redone, f"a re-run did work again: {redone}"
    median = statistics.median(times)
    print(
        f"build --locked re-run: min {min(times):.2f} s, median {median:.2f} s over {len(times)} runs (target < {TARGET_S:.0f} s)"
    )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
