"""A recipe's extensions from the shared binary cache vs a cold compile, side by side (issue 15).

Two "machines" in one run: two homes, two prefixes, two empty local caches, one real OCI registry
on 127.0.0.1 (Debian's docker-registry with htpasswd, as the tests start it; or --remote to use
one you run, e.g. file:///nfs/cache):

  machine 1: `envbuilder build RECIPE` compiles the extensions cold, then `envbuilder cache push`;
  the fetch alone: remote.fetch of each extension's key into an empty folder, verified (transfer,
             digests, sha256, key, SASS), timed per extension;
  machine 2: `envbuilder build RECIPE --cache REMOTE` (once the build takes --cache; before that,
             `envbuilder cache pull REMOTE`, then `build`), so it installs the wheels.

Printed per extension: cold compile seconds, fetch seconds and size, and machine 2's time for
it with the cache status it reports. Goal (issue 15): PyTorch3D from the registry under 10 s
(its compile: 36 minutes on 2 cores), transfer aside.

Usage: python benchmarks/bench_cache_remote.py RECIPE [--extension NAME] [--arch 12.0] [--installer uv|pip]
       [--remote oci://…|file://…] [--recipes DIR] [--mirror DIR] [--json] [--keep]
e.g.   python benchmarks/bench_cache_remote.py cap4d --extension pytorch3d --arch 12.0
Without apt on the machine, point ENVBUILDER_TEST_REGISTRY at a docker-registry binary unpacked
from the .deb (tests/registry.py says how).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def cli(*args: str, env: dict[str, str], json_out: bool = True) -> tuple[float, dict]:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "envbuilder", *args, *(["--json"] if json_out else [])]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 3):  # 3: built, a licensed asset is missing (not our concern here)
        sys.exit(f"envbuilder {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return seconds, json.loads(result.stdout) if json_out and result.stdout.strip() else {}


def step_seconds(report: dict, name: str) -> float:
    return next((s["seconds"] for s in report.get("steps", []) if s["name"] == name), float("nan"))


def lock_extensions(prefix: Path) -> list[dict]:
    manifest = prefix / "envbuilder.manifest.json"
    return json.loads(manifest.read_text())["extensions"]


def build_takes_cache(env: dict[str, str]) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "envbuilder", "build", "--help"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    return "--cache" in done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--extension", help="report only this extension (default: every extension of the recipe)")
    parser.add_argument("--arch", default="12.0")
    parser.add_argument("--installer", choices=("uv", "pip"), default="uv" if shutil.which("uv") else "pip")
    parser.add_argument("--remote", help="use this remote instead of starting a registry on 127.0.0.1")
    parser.add_argument(
        "--recipes", action="append", default=[], metavar="DIR", help="extra recipe folder (repeatable)"
    )
    parser.add_argument("--mirror", metavar="DIR", help="local git mirrors to clone from (a machine without GitHub)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="envbuilder-bench-remote-"))
    base = {**os.environ}
    server = None
    try:
        if args.remote:
            url = args.remote
        else:
            from registry import RegistryServer, missing_reason

            reason = missing_reason()
            if reason:
                sys.exit(f"cannot start a registry: {reason}; or pass --remote file:///some/folder")
            server = RegistryServer(scratch / "registry", {"bench": "bench-password"}).start()
            url = server.remote("bench/envbuilder-cache")
            base.update(ENVBUILDER_REGISTRY_USERNAME="bench", ENVBUILDER_REGISTRY_PASSWORD="bench-password")

        def machine(n: int) -> dict[str, str]:
            return {
                **base,
                "ENVBUILDER_HOME": str(scratch / f"m{n}" / "home"),
                "ENVBUILDER_CACHE": str(scratch / f"m{n}" / "cache"),
            }

        common = ["--arch", args.arch, "--installer", args.installer, "--no-smoke"]
        common += [f"--recipes={d}" for d in args.recipes]
        common += [f"--mirror={args.mirror}"] if args.mirror else []
        one, two = scratch / "m1" / "env", scratch / "m2" / "env"

        cold_total, cold = cli("build", args.recipe, *common, "--prefix", str(one), env=machine(1))
        cold_ext = {e["name"]: e for e in lock_extensions(one)}
        # machine 1's cache and the scratch registry hold this run's wheels only: push and pull all
        push_seconds, pushed = cli("cache", "push", url, "--all", env=machine(1))

        # the fetch alone, per extension (transfer and verification, no install)
        from envbuilder import remote
        from envbuilder.host.compat import parse_arch_list

        os.environ.update({k: v for k, v in base.items() if k.startswith("ENVBUILDER_REGISTRY_")})
        fetched = {}
        for name, e in cold_ext.items():
            dest = scratch / "fetch" / name
            started = time.perf_counter()
            got = remote.open_remote(url).fetch(e["cache_key"], parse_arch_list(args.arch), dest)
            seconds = time.perf_counter() - started
            if got.wheel is None:
                sys.exit(f"{name}: {got.reason}")
            fetched[name] = {"seconds": seconds, "bytes": got.wheel.stat().st_size}

        env2 = machine(2)
        if build_takes_cache(env2):
            how, pull_seconds = f"build --cache {url}", 0.0
            warm_total, warm = cli("build", args.recipe, *common, "--prefix", str(two), "--cache", url, env=env2)
        else:
            how = f"cache pull {url}, then build"
            pull_seconds, _ = cli("cache", "pull", url, env=env2)
            warm_total, warm = cli("build", args.recipe, *common, "--prefix", str(two), env=env2)
        warm_ext = {e["name"]: e for e in lock_extensions(two)}
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    names = [args.extension] if args.extension else sorted(cold_ext)
    for n in names:
        if n not in cold_ext:
            sys.exit(f"{args.recipe} builds no extension {n!r} (it builds: {', '.join(sorted(cold_ext))})")
    rows = [
        {
            "extension": n,
            "cold_compile_s": cold_ext[n]["build_seconds"],
            "fetch_s": round(fetched[n]["seconds"], 2),
            "wheel_mib": round(fetched[n]["bytes"] / 1024**2, 1),
            "machine2_s": warm_ext[n]["build_seconds"],
            "machine2_cache": warm_ext[n]["cache"],
        }
        for n in names
    ]
    figures = {
        "recipe": args.recipe,
        "arch": args.arch,
        "remote": url if args.remote else "docker-registry on 127.0.0.1",
        "machine2_via": how,
        "extensions_step_s": {"cold": step_seconds(cold, "extensions"), "from_cache": step_seconds(warm, "extensions")},
        "build_total_s": {"cold": round(cold_total, 1), "from_cache": round(warm_total, 1)},
        "push_s": round(push_seconds, 1),
        "pull_s": round(pull_seconds, 1),
        "pushed": [r["status"] for r in pushed.get("results", [])],
        "extensions": rows,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.recipe} --arch {args.arch}: machine 2 via `{how}`; {figures['remote']}")
    print(f"{'extension':<16} {'cold compile':>12} {'fetch':>8} {'wheel':>9} {'machine 2':>10}  cache")
    for r in rows:
        print(
            f"{r['extension']:<16} {r['cold_compile_s']:>10.1f} s {r['fetch_s']:>6.2f} s {r['wheel_mib']:>5.1f} MiB"
            f" {r['machine2_s']:>8.1f} s  {r['machine2_cache']}"
        )
    steps = figures["extensions_step_s"]
    print(
        f"extensions step: cold {steps['cold']:.1f} s, from the cache {steps['from_cache']:.1f} s; "
        f"push {push_seconds:.1f} s, pull {pull_seconds:.1f} s (whole CLI runs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
