"""Options and helpers several command groups share: recipe folders, the plan options, and
turning them into a Plan (with the host facts it was made against)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from envbuilder.errors import EnvbuilderError, InputError

if TYPE_CHECKING:
    from envbuilder.host import HostFacts
    from envbuilder.lock.model import Lock
    from envbuilder.plan import Plan
    from envbuilder.recipe.catalog import Catalog


def add_recipes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--recipes",
        metavar="DIR",
        action="append",
        type=Path,
        default=[],
        help="extra recipe folder, searched before $ENVBUILDER_PATH and the built-in recipes (repeatable)",
    )


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def add_plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe name (see `envbuilder list`)")
    p.add_argument(
        "--arch", help='GPU arch(s) to build for: 12.0 (RTX 50xx), "9.0;12.0", 12.0+PTX. Default: the GPUs present'
    )
    p.add_argument("--cuda", help="CUDA toolkit version (12.8, 13.0) or its directory. Default: newest that fits")
    p.add_argument(
        "--python", help="Python version (3.12) or interpreter path. Default: this Python if the recipe allows it"
    )
    p.add_argument("--prefix", type=Path, help="where the env goes. Default: $ENVBUILDER_HOME/envs/<recipe>")
    p.add_argument("--jobs", type=int, help="parallel compile jobs (MAX_JOBS). Default: from cores and RAM")
    p.add_argument("--mirror", type=Path, metavar="DIR", help="local git mirrors to clone from instead of the network")
    p.add_argument(
        "--system-site-packages",
        action="store_true",
        help="let the venv see the interpreter's packages (reuse an installed torch)",
    )
    p.add_argument(
        "--installer",
        choices=("auto", "uv", "pip"),
        default="auto",
        help="venv/installer backend (default: uv if on PATH)",
    )
    p.add_argument(
        "--locked",
        type=Path,
        metavar="FILE",
        help="build exactly what the lock FILE names (pylock.<recipe>.toml from `envbuilder lock`): its wheels, "
        "checked byte for byte, its commits and patches",
    )
    p.add_argument("--no-smoke", action="store_true", help="do not run the smoke training even with a GPU")
    p.add_argument(
        "--stub-assets",
        action="store_true",
        help="let the smoke run use stand-ins for missing gated models (results are marked stub-driven)",
    )
    add_json_option(p)
    add_recipes_option(p)


def catalog(args: argparse.Namespace) -> Catalog:
    from envbuilder.recipe.catalog import Catalog

    return Catalog.default(args.recipes)


def make_plan(args: argparse.Namespace, *, plan_only: bool = False) -> tuple[Plan, HostFacts]:
    from envbuilder.cache import tree_digest
    from envbuilder.host import discover
    from envbuilder.plan import Options
    from envbuilder.plan import make_plan as plan_for
    from envbuilder.recipe.model import PathSource

    recipe = catalog(args).recipe(args.recipe)
    extra_toolkits = [(Path(args.cuda), "--cuda")] if args.cuda and "/" in args.cuda else None
    host = discover(extra_toolkits=extra_toolkits)
    if args.python and "/" in args.python:
        host = _with_interpreter(host, Path(args.python))
    if args.mirror and not args.mirror.is_dir():
        raise InputError(f"--mirror {args.mirror}: not a directory")
    source = recipe.source
    digest = tree_digest(source.path) if isinstance(source, PathSource) and source.path.is_dir() else None
    options = Options(
        arch=args.arch,
        cuda=args.cuda,
        python=args.python,
        prefix=args.prefix,
        jobs=args.jobs,
        mirror=args.mirror.resolve() if args.mirror else None,
        system_site_packages=args.system_site_packages,
        installer=args.installer,
        source_digest=digest,
        plan_only=plan_only,
        smoke=not args.no_smoke,
        stub_assets=args.stub_assets,
        lock=_read_lock(args),
        lock_file=args.locked.absolute() if getattr(args, "locked", None) else None,
    )
    return plan_for(recipe, host, options), host


def _read_lock(args: argparse.Namespace) -> Lock | None:
    locked: Path | None = getattr(args, "locked", None)
    if locked is None:
        return None
    from envbuilder.lock.tomlfile import read_lock

    if not locked.is_file():
        raise InputError(f"--locked {locked}: no such file", hint="make one with `envbuilder lock RECIPE`")
    return read_lock(locked)


def _with_interpreter(host: HostFacts, exe: Path) -> HostFacts:
    """--python PATH: that interpreter first among the host's."""
    from packaging.version import Version

    from envbuilder.host.toolchain import Interpreter, interpreter_facts

    try:
        facts = interpreter_facts(exe)
    except EnvbuilderError:
        raise InputError(f"--python {exe}: not a Python interpreter this machine can run") from None
    chosen = Interpreter(exe, Version(facts["version"]), "--python")
    return dataclasses.replace(host, interpreters=(chosen, *host.interpreters))


def first_positional(argv: list[str], start: int, takes_value: frozenset[str]) -> int | None:
    """Index of the first argument after argv[start] that is not an option or an option's value."""
    i = start + 1
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return i + 1 if i + 1 < len(argv) else None
        if word.startswith("-"):
            i += 2 if word in takes_value else 1
            continue
        return i
    return None
