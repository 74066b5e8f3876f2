"""envbuilder lock RECIPE | --from-env PREFIX: a PEP 751 lock of the recipe's wheels, resolved
without compiling anything (see envbuilder/lock/)."""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from envbuilder.cli.options import add_json_option, add_recipes_option, make_plan
from envbuilder.errors import EXIT_FAILED, EXIT_OK, InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from envbuilder.lock.model import Lock
    from envbuilder.plan import Plan


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lock",
        help="write pylock.<recipe>.toml: exact, hashed wheels and envbuilder's record (compiles nothing)",
        description="Resolve the recipe's wheels for one Python and platform and write a PEP 751 lock. "
        "An existing lock at --output keeps its versions (add --upgrade or --upgrade-package NAME to move them).",
    )
    p.add_argument("recipe", nargs="?", help="recipe name (not with --from-env)")
    p.add_argument("--arch", help='GPU arch(s) the lock is for: 12.0, "9.0;12.0". Default: the GPUs present')
    p.add_argument("--cuda", help="CUDA version the lock is for (12.8, 13.0); need not be installed here")
    p.add_argument("--python", help="Python version the lock is for (3.12). Default: as `plan` picks it")
    p.add_argument(
        "--platform",
        help="target platform, as uv names it. Default: this machine's (its glibc: x86_64-manylinux_2_36 on Debian 12)",
    )
    p.add_argument(
        "--torch",
        metavar="VERSION",
        help="lock against this torch (the one a base provides, e.g. 2.11.0 for a cluster's torch module); "
        "must fit the recipe's torch pin",
    )
    p.add_argument(
        "--base",
        type=Path,
        metavar="FREEZE",
        help="a `pip freeze` of the base the env will sit on (--system-site-packages): its versions are kept "
        "where the recipe allows them, so a bundle made --without base need not carry them",
    )
    p.add_argument("--output", "-o", type=Path, help="lock file to write. Default: ./pylock.<recipe>.toml")
    p.add_argument(
        "--check", type=Path, metavar="FILE", help="resolve afresh and compare with FILE: exit 1 on any change"
    )
    p.add_argument(
        "--upgrade-package", action="append", default=[], metavar="NAME", help="re-resolve NAME, keep the rest"
    )
    p.add_argument(
        "--upgrade", action="store_true", help="re-resolve every package (ignore the existing lock's versions)"
    )
    p.add_argument("--from-env", type=Path, metavar="PREFIX", help="freeze an env envbuilder built, without resolving")
    p.add_argument(
        "--no-pip-config",
        action="store_true",
        help="ignore this machine's pip configuration (extra indexes, find-links, constraints): PyPI and the recipe's torch index only",
    )
    p.add_argument(
        "--default-index",
        metavar="URL",
        help="the index for everything but the torch family (default: PyPI or pip's index-url)",
    )
    p.add_argument(
        "--mirror", type=Path, metavar="DIR", help="local git mirrors to read the sources from (as build --mirror)"
    )
    add_json_option(p)
    add_recipes_option(p)
    # make_plan reads these build options; a lock needs none of them
    p.set_defaults(
        func=cmd_lock,
        prefix=None,
        jobs=None,
        system_site_packages=False,
        installer="auto",
        no_smoke=True,
        stub_assets=False,
    )


def cmd_lock(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from envbuilder import report
    from envbuilder.lock.base import base_constraints, on_base, recorded_base, with_torch
    from envbuilder.lock.diff import diff_locks
    from envbuilder.lock.freeze import freeze_env
    from envbuilder.lock.indexes import IndexConfig, from_pip_config
    from envbuilder.lock.record import part_from_plan, with_locked_torch
    from envbuilder.lock.resolve import Request, resolve
    from envbuilder.lock.target import Target, default_platform
    from envbuilder.lock.tomlfile import lock_filename, read_lock, write_lock
    from envbuilder.lock.tools import ensure_tools

    if args.from_env:
        if args.recipe or args.check or args.upgrade_package or args.upgrade:
            raise InputError("--from-env takes no recipe, --check or --upgrade: it freezes the env as it is")
        lock = freeze_env(args.from_env)
        name = lock.envbuilder.recipe if lock.envbuilder and lock.envbuilder.recipe else "env"
        path = write_lock(lock, args.output or Path(lock_filename(name)))
        return _done(args, path, lock, [])
    if not args.recipe:
        raise InputError("name a recipe (envbuilder lock RECIPE), or freeze a built env with --from-env PREFIX")
    plan, _host = make_plan(args, plan_only=True)
    for warning in plan.warnings:
        report.warn(warning)
    notes = None if args.json else report.lock_note
    tools = ensure_tools()
    indexes = IndexConfig() if args.no_pip_config else from_pip_config(tools.pip, env=dict(os.environ))
    if args.default_index:
        indexes = replace(indexes, default=args.default_index.rstrip("/"))
    python = f"{plan.interpreter.version.major}.{plan.interpreter.version.minor}"
    request = Request.from_wheels_inputs(
        plan.step("wheels").inputs, Target(python, args.platform or default_platform())
    )
    if args.torch:
        request = with_torch(request, args.torch)
    part = part_from_plan(plan)
    with ExitStack() as stack:
        base = None  # the temporary constraints made from --base, removed when the lock is written
        if args.base:
            base = stack.enter_context(base_constraints(args.base))
            indexes = replace(indexes, constraints=(*indexes.constraints, base))
            resolve = on_base(resolve, base, note=notes or report.warn)

        def finish(lock: Lock) -> Lock:
            lock = replace(lock, envbuilder=with_locked_torch(lock.envbuilder or part, lock, request.torch_names()))
            lock = _with_sources(plan, lock, notes)
            return recorded_base(lock, base, args.base) if base else lock

        output = args.output or Path(lock_filename(plan.recipe.name))

        if args.check:
            locked = read_lock(args.check)
            fresh = finish(resolve(request, tools=tools, indexes=indexes, part=part, on_note=notes))
            changes = diff_locks(locked, fresh)
            if args.json:
                report.print_json(
                    {"ok": not changes, "lock": str(args.check), "changes": [c.to_json() for c in changes]}
                )
            else:
                report.lock_check(str(args.check), [c.line() for c in changes])
            return EXIT_FAILED if changes else EXIT_OK

        previous = None
        if output.is_file() and not args.upgrade:
            previous = read_lock(output)
        elif args.upgrade_package:
            raise InputError(
                f"--upgrade-package needs the existing lock: {output} is not there",
                hint="lock once without it, or pass --output",
            )
        lock = finish(
            resolve(
                request,
                tools=tools,
                indexes=indexes,
                previous=previous,
                upgrade=args.upgrade_package,
                part=part,
                on_note=notes,
            )
        )
        changes = diff_locks(previous, lock) if previous else []
        path = write_lock(lock, output)
        return _done(args, path, lock, [c.line() for c in changes], site_config=indexes.site_config)


def _with_sources(plan: Plan, lock: Lock, notes: Callable[[str], None] | None) -> Lock:
    """Commits as checked out and extension keys (sources and patches run, nothing compiles);
    left out, with a warning, where this host lacks the lock's CUDA toolkit."""
    from envbuilder import report
    from envbuilder.lock.sources import source_facts, with_source_facts

    if "not installed" in plan.toolkit.found_by:
        report.warn(
            f"CUDA {plan.toolkit.release} is not installed here: the lock records the planned source commit, "
            "but no submodule commits and no extension keys (lock on a host with that toolkit for those)"
        )
        return lock
    return with_source_facts(lock, source_facts(plan, lock, on_note=notes))


def _done(args: argparse.Namespace, path: Path, lock: Lock, changes: list[str], *, site_config: bool = False) -> int:
    from envbuilder import report as r

    if args.json:
        r.print_json(
            {
                "ok": True,
                "lock": str(path),
                "packages": [
                    {
                        "name": p.name,
                        "version": p.version,
                        "kind": p.artifact.kind,
                        "url": p.artifact.url,
                        "sha256": p.artifact.sha256,
                        "size": p.artifact.size,
                        "index": p.index,
                    }
                    for p in lock.packages
                ],
                "changes": changes,
                "site_config": site_config,
            }
        )
    else:
        r.lock_written(str(path), lock, changes, site_config=site_config)
    return EXIT_OK
