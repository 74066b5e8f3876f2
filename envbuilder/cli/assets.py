"""envbuilder assets check|install|fetch|stub RECIPE: the gated and free files a method needs.

`envbuilder assets RECIPE` (no verb) still means `assets check RECIPE`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from envbuilder.cli.options import add_json_option, add_recipes_option, catalog, first_positional
from envbuilder.errors import EXIT_OK, InputError, exit_code_for

VERBS = ("check", "install", "fetch", "stub")
TAKES_VALUE = frozenset({"--root", "--prefix", "--dest", "--python", "--recipes"})
EXIT_CODES = "Exit 0: all present and valid; 3: something is missing; 1: something present is invalid."


def rewrite(argv: list[str], at: int) -> list[str]:
    """The spelling before verbs: `assets RECIPE` -> `assets check RECIPE`."""
    word = first_positional(argv, at, TAKES_VALUE)
    if word is not None and argv[word] not in VERBS:
        return [*argv[: at + 1], "check", *argv[at + 1 :]]
    return argv


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe")
    p.add_argument(
        "--root", type=Path, metavar="DIR", help="the method's source tree (default: the built env's src/<recipe>)"
    )
    p.add_argument(
        "--prefix", type=Path, help="the env whose source tree to use (default: $ENVBUILDER_HOME/envs/<recipe>)"
    )
    add_json_option(p)
    add_recipes_option(p)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "assets",
        help="which gated and free assets a recipe needs, and whether they are in place",
        description=EXIT_CODES,
    )
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser(
        "check", help="every asset: status, exact destination, where to get it", description=EXIT_CODES
    )
    _common(p)
    p.set_defaults(func=cmd_check)
    p = verbs.add_parser("install", help="identify downloaded files (a zip too), validate them, put them in place")
    _common(p)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_install)
    p = verbs.add_parser("fetch", help="download the free assets (resumable, checksummed)")
    _common(p)
    p.set_defaults(func=cmd_fetch)
    p = verbs.add_parser("stub", help="structurally valid stand-ins for licensed models, marked as such")
    _common(p)
    p.add_argument("--dest", type=Path, metavar="DIR", help="the source tree to write stand-ins into")
    p.add_argument("--python", type=Path, help="a Python with numpy (default: the env's)")
    p.set_defaults(func=cmd_stub)


def _root(args: argparse.Namespace, recipe: str, required: bool) -> Path:
    from envbuilder.context import Layout

    root: Path = args.root or Layout.for_recipe(recipe, args.prefix).source_tree
    if required and not root.is_dir():
        raise InputError(
            f"no source tree at {root}",
            hint=f"build it first (envbuilder build {recipe}), or pass --root DIR for your own clone",
        )
    return root


def _record(root: Path) -> None:
    """The env's manifest lists its assets, when root is an env's source tree (<prefix>/src/<recipe>)."""
    from envbuilder.assets import Registry
    from envbuilder.context import Layout
    from envbuilder.steps.manifest import record_assets

    if root.parent.name == "src":
        record_assets(Layout(root.parent.parent, root.name), Registry.load(root))


def cmd_check(args: argparse.Namespace) -> int:
    from envbuilder import assets, report

    recipe = catalog(args).recipe(args.recipe)
    root = _root(args, recipe.name, required=False)
    statuses = assets.check(recipe, root)
    code = exit_code_for([assets.verdict(statuses)])
    blocked = assets.blocked_steps(statuses)
    if args.json:
        found = [s.to_json() for s in statuses]
        report.print_json(
            {"recipe": recipe.name, "root": str(root), "exit_code": code, "assets": found, "blocked": blocked}
        )
    else:
        report.assets_status(recipe.name, root, statuses, blocked)
    return code


def cmd_install(args: argparse.Namespace) -> int:
    from envbuilder import assets, report

    recipe = catalog(args).recipe(args.recipe)
    root = _root(args, recipe.name, required=True)
    done, warnings = assets.install(recipe, root, args.files)
    _record(root)
    if args.json:
        report.print_json({"installed": [d.to_json() for d in done], "warnings": warnings})
    else:
        report.assets_installed(done, warnings)
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    from envbuilder import assets, report
    from envbuilder.paths import cache_dir

    recipe = catalog(args).recipe(args.recipe)
    root = _root(args, recipe.name, required=True)
    results = _fetch_with_progress(recipe, root, cache_dir(), quiet=args.json)
    _record(root)
    if args.json:
        report.print_json(results)
    else:
        report.assets_fetched(results)
    return exit_code_for([assets.verdict(assets.check(recipe, root))])


def cmd_stub(args: argparse.Namespace) -> int:
    from envbuilder import assets, report
    from envbuilder.context import Layout

    recipe = catalog(args).recipe(args.recipe)
    layout = Layout.for_recipe(recipe.name, args.prefix)
    root = args.dest or _root(args, recipe.name, required=True)
    root.mkdir(parents=True, exist_ok=True)
    python = args.python or (layout.python if layout.python.exists() else Path(sys.executable))
    written, skipped = assets.stub(recipe, root, python)
    if args.json:
        report.print_json({"written": written, "skipped": skipped, "root": str(root)})
    else:
        report.assets_stubbed(written, skipped)
    return EXIT_OK


def _fetch_with_progress(recipe: Any, root: Path, cache: Path, quiet: bool) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from envbuilder import assets, report

    columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=report.err, disable=quiet) as progress:

        def progress_for(asset: Any) -> Any:
            task = progress.add_task(asset.name, total=None)
            return lambda done, total: progress.update(task, completed=done, total=total)

        return assets.fetch(recipe, root, cache, progress_for)
