"""Speed target: locking the canary's wheel set takes under 10 s once its wheels are cached.

Plans the canary (`envbuilder plan canary --arch 12.0 --json`, a child process), takes the wheels
step's inputs, and resolves them with envbuilder's uv for the plan's Python on
x86_64-manylinux_2_28, with this machine's pip configuration (indexes, find-links, constraints),
as `envbuilder lock` does by default. The first round fills the download cache (it fetches and
hashes torch and its nvidia-* wheels, several GB) and is not timed against the target; the
following rounds are. Usage: python benchmarks/bench_lock.py [--runs 3] [--no-pip-config]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from envbuilder.lock.download import DownloadCache
from envbuilder.lock.indexes import IndexConfig, from_pip_config
from envbuilder.lock.resolve import Request, resolve
from envbuilder.lock.target import Target, default_platform
from envbuilder.lock.tools import ensure_tools

TARGET_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-pip-config", action="store_true")
    args = parser.parse_args()
    plan = json.loads(
        subprocess.run(
            [sys.executable, "-m", "envbuilder", "plan", "canary", "--arch", "12.0", "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    inputs = next(s for s in plan["steps"] if s["name"] == "wheels")["inputs"]
    python = ".".join(plan["python"]["version"].split(".")[:2])
    tools = ensure_tools()
    indexes = IndexConfig() if args.no_pip_config else from_pip_config(tools.pip, env=dict(os.environ))
    request = Request.from_wheels_inputs(inputs, Target(python, default_platform()))
    started = time.perf_counter()
    cache = DownloadCache()
    lock = resolve(request, tools=tools, indexes=indexes, cache=cache)
    first = time.perf_counter() - started
    size = sum(p.artifact.size for p in lock.packages)
    print(
        f"first round: {first:.1f} s, {len(lock.packages)} packages, {size / 1e9:.2f} GB, downloaded {len(cache.fetched_urls)} files"
    )
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        again = resolve(request, tools=tools, indexes=indexes)
        times.append(time.perf_counter() - started)
        assert again.packages == lock.packages, "a warm re-lock changed the lock"
    median = statistics.median(times)
    torch = lock.package("torch")
    print(f"torch {torch.version if torch else '?'} from {torch.index if torch else '?'}")
    print(
        f"lock canary (cached): min {min(times):.2f} s, median {median:.2f} s over {len(times)} runs (target < {TARGET_S:.0f} s)"
    )
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
