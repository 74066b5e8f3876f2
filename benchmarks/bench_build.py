"""Build-speed targets (issue 6), measured in one run with the real CLI:

  (a) cold vs warm `build canary`: the warm re-run at least 50x faster and under 5 s;
  (b) compiling one extension for one arch vs torch's whole default arch list;
  (c) `plan` latency (see bench_plan.py: under 300 ms);
  (d) a second env sharing torch and the extension: under 20 s and under 200 MB of extra disk
      (uv hard-links torch from its cache; the extension comes from envbuilder's wheel cache).

Everything lives in a scratch directory (ENVBUILDER_HOME/CACHE point there); uv is used for (d)
when it is on PATH (pip install uv). Usage: python benchmarks/bench_build.py [--parts abcd]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCH_DEFAULT_ARCHS = "7.5;8.0;8.6;9.0;10.0;12.0"  # torch 2.11+ cu130 wheels (research/blackwell.md §2)


def cli(*args: str, env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "envbuilder", *args, "--json"], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"envbuilder {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return seconds, json.loads(result.stdout)


def step_seconds(report: dict, name: str) -> float:
    return next(s["seconds"] for s in report["steps"] if s["name"] == name)


def disk_mib(*paths: Path) -> float:
    """du counts a hard-linked file once across all its arguments: the joint size of the envs."""
    out = subprocess.run(["du", "-sk", "-c", *map(str, paths)], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="abcd")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="envbuilder-bench-"))
    env = {**os.environ, "ENVBUILDER_HOME": str(scratch / "home"), "ENVBUILDER_CACHE": str(scratch / "cache")}
    installer = "uv" if shutil.which("uv") else "pip"
    rows: list[tuple[str, str, str]] = []
    first = scratch / "env1"
    common = ["--arch", "12.0", "--installer", installer]
    try:
        if "a" in args.parts or "b" in args.parts or "d" in args.parts:
            cold, report = cli("build", "canary", *common, "--prefix", str(first), env=env)
            warm, _ = cli("build", "canary", *common, "--prefix", str(first), env=env)
            rows.append(
                (
                    "(a) cold build canary",
                    f"{cold:.1f} s",
                    f"torch {step_seconds(report, 'wheels'):.0f} s, compile {step_seconds(report, 'extensions'):.0f} s ({installer})",
                )
            )
            rows.append(
                ("(a) warm build canary", f"{warm:.2f} s", f"{cold / warm:.0f}x faster (targets: >= 50x, < 5 s)")
            )
        if "b" in args.parts:
            one = step_seconds(report, "extensions")
            _, full = cli(
                "build",
                "canary",
                "--arch",
                TORCH_DEFAULT_ARCHS,
                "--installer",
                installer,
                "--prefix",
                str(first),
                env=env,
            )
            many = step_seconds(full, "extensions")
            rows.append(("(b) compile canary, 1 arch", f"{one:.1f} s", "--arch 12.0"))
            rows.append(
                (
                    "(b) compile canary, torch's list",
                    f"{many:.1f} s",
                    f"--arch {TORCH_DEFAULT_ARCHS}: {many / one:.1f}x the time",
                )
            )
        if "c" in args.parts:
            plan = subprocess.run(
                [sys.executable, str(Path(__file__).with_name("bench_plan.py")), "--runs", "20"],
                capture_output=True,
                text=True,
                env=env,
            )
            rows.append(("(c) plan canary", plan.stdout.strip().splitlines()[0].split(": ", 1)[-1], "target < 300 ms"))
        if "d" in args.parts:
            cli("build", "canary", *common, "--prefix", str(first), env=env)  # back to 12.0, from the wheel cache
            before = disk_mib(first)
            second = scratch / "env2"
            seconds, _ = cli("build", "canary", *common, "--prefix", str(second), env=env)
            extra = disk_mib(first, second) - before
            cache = json.loads((second / "envbuilder.manifest.json").read_text())["extensions"][0]["cache"]
            rows.append(
                (
                    "(d) second env, same torch + extension",
                    f"{seconds:.1f} s",
                    f"+{extra:.0f} MiB on disk ({installer}; extension: {cache}); targets < 20 s, < 200 MB",
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
