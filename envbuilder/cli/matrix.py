"""envbuilder matrix: recipes x CUDA x Python, for your own CI (see .github/workflows/)."""

from __future__ import annotations

import argparse
import json
import sys

from envbuilder.cli.options import add_recipes_option, catalog
from envbuilder.errors import EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("matrix", help="recipes x CUDA x Python, for your own CI")
    p.add_argument("recipes_named", nargs="*", metavar="RECIPE", help="default: every recipe")
    p.add_argument("--arch", default="12.0", help="arch list every row builds for (default 12.0)")
    p.add_argument("--cuda", action="append", help="only these CUDA releases (repeatable)")
    p.add_argument("--python", action="append", help="only these Pythons (repeatable)")
    p.add_argument(
        "--format", choices=("text", "json", "github"), default="text", help="github: a NAME=… line for $GITHUB_OUTPUT"
    )
    p.add_argument("--name", default="matrix", help="with --format github: the output's name (default matrix)")
    add_recipes_option(p)
    p.set_defaults(func=cmd_matrix)


def cmd_matrix(args: argparse.Namespace) -> int:
    from envbuilder import matrix, report
    from envbuilder.host.compat import parse_arch_list, torch_arch_list

    found = catalog(args)
    names = args.recipes_named or [n for n in sorted(found.recipe_files()) if n != "canary"] + ["canary"]
    arch = torch_arch_list(parse_arch_list(args.arch))
    rows = matrix.rows([found.recipe(n) for n in names], arch, args.cuda, args.python)
    if args.format == "github":
        sys.stdout.write(f"{args.name}=" + json.dumps({"include": rows}, separators=(",", ":")) + "\n")
    elif args.format == "json":
        report.print_json(rows)
    else:
        report.matrix(rows)
    return EXIT_OK
