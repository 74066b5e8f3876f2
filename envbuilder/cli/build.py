"""envbuilder plan | build RECIPE: what a build would do and why, and doing it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from envbuilder.cli.options import add_plan_options, make_plan
from envbuilder.errors import EXIT_OK, InputError, exit_code_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", help="what `build` would do, and why (nothing is written)")
    add_plan_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("build", help="build the recipe's environment")
    add_plan_options(p)
    p.add_argument(
        "--cache",
        metavar="REMOTE",
        help="a shared cache of built extensions (oci://host/ns/name or file:///path; default $ENVBUILDER_CACHE_REMOTE): "
        "a verified wheel from it replaces a compile",
    )
    p.add_argument(
        "--bundle",
        type=Path,
        metavar="DIR",
        help="build from an offline bundle (envbuilder bundle): its lock, sources, wheels and built extensions; no network",
    )
    p.add_argument("--push", action="store_true", help="with --cache: push the extensions this build compiles")
    p.add_argument(
        "--rebuild-extensions",
        action="store_true",
        help="compile the extensions even where a cache or a bundle holds them (the new wheels replace no entry)",
    )
    p.add_argument("--insecure", action="store_true", help="with --cache: allow plain HTTP to a registry off this host")
    p.add_argument(
        "--compile-cache",
        choices=("sccache", "ccache", "none"),
        help="the compiler cache under extension builds (default $ENVBUILDER_COMPILE_CACHE, else sccache): "
        "a rebuild after a patch edit recompiles only what changed",
    )
    p.set_defaults(func=cmd_build)


def cmd_plan(args: argparse.Namespace) -> int:
    from envbuilder import report

    plan, _ = make_plan(args, plan_only=True)
    if args.json:
        report.print_json(plan.to_json())
    else:
        report.plan_text(plan)
    return EXIT_OK


def _shared_cache_options(args: argparse.Namespace) -> None:
    """The shared cache is the build's surroundings, like $ENVBUILDER_CACHE: not a step input (a
    wheel from it is checked to have the very key the build computed)."""
    from envbuilder.remote import INSECURE_VAR, REMOTE_VAR
    from envbuilder.steps.extensions import PUSH_VAR

    if args.cache:
        os.environ[REMOTE_VAR] = args.cache
    if (args.push or args.insecure) and not os.environ.get(REMOTE_VAR):
        raise InputError("--push and --insecure go with --cache REMOTE (or $ENVBUILDER_CACHE_REMOTE)")
    if args.push:
        os.environ[PUSH_VAR] = "1"
    if args.insecure:
        os.environ[INSECURE_VAR] = "1"
    if args.rebuild_extensions:
        from envbuilder.steps.extensions import REBUILD_VAR

        os.environ[REBUILD_VAR] = "1"
    if args.compile_cache:
        from envbuilder import compilecache

        os.environ[compilecache.VAR] = args.compile_cache


def _from_bundle(args: argparse.Namespace) -> dict[str, Any]:
    """build --bundle DIR: check every file, then take the bundle's lock, recipe files, git
    repositories (restored as mirrors), built extensions (a file:// cache), envbuilder's own
    tools and carried assets. Nothing of it needs a network."""
    from envbuilder.bundle import check, gitrepos
    from envbuilder.fsutil import copy_atomic
    from envbuilder.lock.tools import OFFLINE_VAR
    from envbuilder.paths import cache_dir
    from envbuilder.remote import REMOTE_VAR

    root: Path = args.bundle.absolute()
    if args.locked or args.mirror:
        raise InputError("--bundle brings its own lock and sources: drop --locked and --mirror")
    check.verify(root)
    manifest = check.read_manifest(root)
    if manifest.get("recipe") != args.recipe:
        raise InputError(f"{root} is a bundle of {manifest.get('recipe')}, not {args.recipe}")
    args.locked = root / str(manifest["lock"])
    args.recipes = [root / "data", *args.recipes]
    sums = check.file_sha256(root / "SHA256SUMS")[:16]
    args.mirror = gitrepos.restore(root, cache_dir() / "bundles" / sums / "git") if (root / "git").is_dir() else None
    if any((root / "cache" / "refs").glob("*")):
        os.environ[REMOTE_VAR] = f"file://{root / 'cache'}"
    os.environ[OFFLINE_VAR] = str(root / "tools")
    for asset in manifest.get("assets", []):
        dest = Path(str(asset["path"])).expanduser()
        if not dest.exists():
            copy_atomic(root / str(asset["file"]), dest)
    return manifest


def _check_bundle_target(manifest: dict[str, Any], plan: Any, host: Any) -> None:
    import platform

    from envbuilder.bundle.check import target_problem

    problem = target_problem(manifest, plan.interpreter.version, host.glibc, platform.machine())
    if problem:
        raise InputError(
            problem, hint="make a bundle for this machine (envbuilder lock --python/--platform, then bundle)"
        )


def cmd_build(args: argparse.Namespace) -> int:
    from envbuilder import assets, report
    from envbuilder.execute import execute

    _shared_cache_options(args)
    manifest = _from_bundle(args) if args.bundle else None
    plan, host = make_plan(args)
    if manifest is not None:
        _check_bundle_target(manifest, plan, host)
    for w in plan.warnings:
        report.warn(w)
    if not args.json:
        report.err.print(f"building [bold]{plan.recipe.name}[/] for {plan.torch_cuda_arch_list} into {plan.prefix}")
    result = execute(plan, report.ProgressReporter())
    checked, smoked = result.outputs.get("assets", {}), result.outputs.get("smoke", {})
    code = exit_code_for([checked.get("verdict", "ok"), smoked.get("verdict", "ok")])
    if args.json:
        report.print_json(
            {
                **result.to_json(),
                "exit_code": code,
                "assets_exit_code": exit_code_for([checked.get("verdict", "ok")]),
                "blocked": checked.get("blocked", {}),
                "smoke": smoked,
            }
        )
        return code
    report.build_done(str(result.prefix), str(result.manifest), smoked)
    if checked.get("verdict", "ok") != "ok":
        root = Path(result.outputs["sources"]["root"])
        statuses = assets.check(plan.recipe, root)
        report.build_blocked(plan.recipe.name, root, statuses, assets.blocked_steps(statuses), code)
    return code
