"""envbuilder patch scan|check|apply|revert: a recipe's source patches on a tree you cloned
yourself, or a scan of any tree for the problems the patches fix.

The spellings before verbs still work: `patch RECIPE --source DIR [--check|--apply|--revert]`
and `patch --scan DIR`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from envbuilder.cli.options import add_json_option, add_recipes_option, first_positional
from envbuilder.errors import EXIT_OK, InputError

VERBS = ("scan", "check", "apply", "revert")
MODES = {"--check": "check", "--apply": "apply", "--revert": "revert"}
TAKES_VALUE = frozenset({"--source", "--torch", "--cuda", "--gcc", "--arch", "--recipes", "--scan"})


def rewrite(argv: list[str], at: int) -> list[str]:
    """`patch --scan DIR` -> `patch scan DIR`; `patch RECIPE ... --apply` -> `patch apply RECIPE ...`."""
    rest = argv[at + 1 :]
    if "--scan" in rest:
        i = rest.index("--scan")
        return [*argv[: at + 1], "scan", *rest[:i], *rest[i + 1 :]]
    word = first_positional(argv, at, TAKES_VALUE)
    if word is None or argv[word] in VERBS:
        return argv
    modes = [MODES[w] for w in rest if w in MODES]
    if len(modes) > 1:
        raise InputError(f"patch: choose one of {', '.join(MODES)}, not {' and '.join(f'--{m}' for m in modes)}")
    verb = modes[0] if modes else "check"
    return [*argv[: at + 1], verb, *(w for w in rest if w not in MODES)]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "patch",
        help="check, apply or revert a recipe's source patches in a tree you cloned yourself; or scan a tree",
        description="Exit 1 when a patch cannot apply.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("scan", help="find cstdint/cfloat/C++-standard problems in any tree")
    p.add_argument("tree", type=Path, metavar="DIR")
    add_json_option(p)
    p.set_defaults(func=cmd_scan)
    for verb, text in (
        ("check", "report what the patches would change (writes nothing)"),
        ("apply", "apply the patches"),
        ("revert", "undo applied patches (a file edited since is left alone)"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("recipe", help="recipe whose patches to use")
        p.add_argument(
            "--source",
            type=Path,
            metavar="DIR",
            required=True,
            help="the method's source tree (a clone with submodules)",
        )
        p.add_argument("--diff", action="store_true", help="print the unified diff of the changes")
        p.add_argument(
            "--torch", help="torch version the tree will be built with (default: the torch this Python can import)"
        )
        p.add_argument("--cuda", help="CUDA version for conditions (default: the newest toolkit found)")
        p.add_argument("--gcc", help="host gcc version for conditions (default: this machine's g++)")
        p.add_argument("--arch", help="archs for conditions")
        add_json_option(p)
        add_recipes_option(p)
        p.set_defaults(func=cmd_patch, mode=verb)


def cmd_patch(args: argparse.Namespace) -> int:
    from envbuilder import patching, report
    from envbuilder.cli.options import catalog
    from envbuilder.steps.patches import patch_sets

    if not args.source.is_dir():
        raise InputError(f"--source {args.source}: not a directory")
    recipe = catalog(args).recipe(args.recipe)
    context = patching.context_here(args.torch, args.cuda, args.gcc, args.arch)
    wanted = [e for e in recipe.extensions if e.when is None or e.when.evaluate(context.facts) is not False]
    # extensions with a repository of their own (pytorch3d, gsplat) are not part of the method's clone
    sets = [(s.root, s.uses) for s in patch_sets(recipe, wanted) if s.uses and s.tree is None]
    results, diff_text = patching.on_tree(args.source, sets, context, args.mode)
    data = {
        "recipe": recipe.name,
        "source": str(args.source),
        "mode": args.mode,
        "cxx_standard": context.cxx_standard,
        "facts": context.facts_json(),
        "results": results,
        **({"diff": diff_text} if args.diff else {}),
    }
    if args.json:
        report.print_json(data)
    else:
        report.patch_results(recipe.name, args.source, args.mode, results, diff_text if args.diff else "")
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    from envbuilder import report, scan

    hits = scan.Scanner(args.tree).scan()
    proposals = scan.proposals(hits)
    if args.json:
        report.print_json({"root": str(args.tree), "hits": [h.to_json() for h in hits], "proposals": proposals})
    else:
        report.scan_results(args.tree, hits, proposals)
    return EXIT_OK
