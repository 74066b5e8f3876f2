"""envbuilder bundle [make] RECIPE (--locked FILE | --from-env PREFIX) --output DIR | bundle join
PARTS.json --output DIR: offline bundles (envbuilder/bundle/). `build RECIPE --bundle DIR` uses
one (cli/build.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from envbuilder.cli.options import add_json_option, add_recipes_option, catalog, first_positional
from envbuilder.errors import EXIT_OK, InputError

VERBS = ("make", "join")
TAKES_VALUE = frozenset(
    {
        "--locked",
        "--from-env",
        "--output",
        "-o",
        "--python",
        "--platform",
        "--without",
        "--split",
        "--mirror",
        "--recipes",
        "--base",
    }
)


def rewrite(argv: list[str], at: int) -> list[str]:
    """`bundle RECIPE ...` -> `bundle make RECIPE ...`."""
    word = first_positional(argv, at, TAKES_VALUE)
    if word is not None and argv[word] not in VERBS:
        return [*argv[: at + 1], "make", *argv[at + 1 :]]
    return argv


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("bundle", help="everything an offline machine needs to build a locked env, in one folder")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("make", help="write a bundle (the default verb: `envbuilder bundle RECIPE ...`)")
    p.add_argument("recipe")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--locked", type=Path, metavar="FILE", help="the lock to bundle (pylock.<recipe>.toml)")
    source.add_argument("--from-env", type=Path, metavar="PREFIX", help="freeze this built env into the bundle's lock")
    p.add_argument("--output", "-o", type=Path, required=True, metavar="DIR", help="the bundle folder (new or empty)")
    p.add_argument("--python", help="the target's Python (must be the lock's: lock again for another)")
    p.add_argument("--platform", help="the target's platform, as uv names it (must be the lock's)")
    p.add_argument(
        "--without",
        choices=("torch",),
        action="append",
        default=[],
        help="torch: leave out torch, its family and its nvidia-*/cuda-* dependencies, for a base that has them",
    )
    p.add_argument(
        "--base",
        type=Path,
        metavar="FREEZE",
        help="a `pip freeze` of the base the env will sit on: leave out what it has at the locked version",
    )
    p.add_argument("--split", metavar="SIZE", help="also write the bundle as parts of at most SIZE (60M, 4G)")
    p.add_argument("--mirror", type=Path, metavar="DIR", help="local git mirrors to read the repositories from")
    add_json_option(p)
    add_recipes_option(p)
    p.set_defaults(func=cmd_make)
    p = verbs.add_parser("join", help="put a --split bundle back together (every part checked)")
    p.add_argument("index", type=Path, metavar="PARTS.json", help="the <bundle>.parts.json beside the parts")
    p.add_argument(
        "--output", "-o", type=Path, default=Path(), metavar="DIR", help="where the bundle goes (default: .)"
    )
    add_json_option(p)
    p.set_defaults(func=cmd_join)


def cmd_make(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.bundle import make, split
    from envbuilder.lock.freeze import freeze_env
    from envbuilder.lock.tomlfile import read_lock

    recipe = catalog(args).recipe(args.recipe)
    lock = read_lock(args.locked) if args.locked else freeze_env(args.from_env)
    target = lock.envbuilder.target if lock.envbuilder else None
    for wanted, have, what in (
        (args.python, target.python if target else None, "Python"),
        (args.platform, target.platform if target else None, "platform"),
    ):
        if wanted and have and wanted != have:
            raise InputError(
                f"the lock is for {what} {have}, not {wanted}: a bundle carries the lock's files",
                hint=f"lock for the target first: envbuilder lock {recipe.name} --{what.lower()} {wanted}",
            )
    size = split.parse_size(args.split) if args.split else None
    note = None if args.json else report.lock_note
    made = make.make(
        recipe,
        lock,
        args.output,
        without_torch="torch" in args.without,
        base_freeze=args.base,
        mirror=args.mirror,
        note=note or (lambda _t: None),
    )
    parts = split.split(made.root, size) if size else None
    if args.json:
        report.print_json({**made.to_json(), "parts": str(parts) if parts else None})
    else:
        report.bundle_made(made, parts)
    return EXIT_OK


def cmd_join(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.bundle import split

    root = split.join(args.index, args.output)
    if args.json:
        report.print_json({"bundle": str(root)})
    else:
        report.out.print(f"[green]joined[/] {root} (every part and every file checked)")
    return EXIT_OK
