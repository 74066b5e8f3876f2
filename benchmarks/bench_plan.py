"""Speed target: `envbuilder plan canary --arch 12.0` under 300 ms wall on a 2-core machine.

Runs the real CLI in a child process N times (the first run warms the .pyc cache and is
dropped) and reports min/median. Also checks that planning imports neither torch nor any other
heavy module. Usage: python benchmarks/bench_plan.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

TARGET_S = 0.300
HEAVY = ("torch", "numpy", "requests")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    argv = [sys.executable, "-m", "envbuilder", "plan", "canary", "--arch", "12.0"]
    # An installed envbuilder has its .pyc files (pip compiles them); a PYTHONDONTWRITEBYTECODE
    # shell would make every run compile ~60 modules from source and measure that instead.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(args.runs + 1):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - started)
    times = times[1:]
    imported = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]], capture_output=True, text=True, check=True
    ).stderr
    modules = {line.split("|")[-1].strip().split(".")[0] for line in imported.splitlines() if "|" in line}
    heavy = sorted(m for m in HEAVY if m in modules)
    median = statistics.median(times)
    print(
        f"plan canary --arch 12.0: min {min(times) * 1000:.0f} ms, median {median * 1000:.0f} ms over {len(times)} runs (target < {TARGET_S * 1000:.0f} ms)"
    )
    print(f"heavy modules imported: {', '.join(heavy) or 'none'}")
    return 0 if median < TARGET_S and not heavy else 1


if __name__ == "__main__":
    raise SystemExit(main())
