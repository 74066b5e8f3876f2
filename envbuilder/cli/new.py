"""envbuilder new URL|PATH: a first recipe for a method envbuilder has never seen, read from its
own tree (and, with --try, built for this host's arch without the smoke run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from envbuilder.cli.options import add_json_option
from envbuilder.errors import EXIT_FAILED, EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "new",
        help="write a first recipe for a method envbuilder does not know, from its repository",
        description="Reads the repository (or directory) at a commit, never running its code, and writes "
        "a recipe folder for --recipes DIR: recipes/<name>.yaml and extensions/<x>/extension.yaml for each "
        "extension envbuilder does not ship. Every guess is commented; what it could not decide is printed "
        "as TODOs. Exit 0: written (and, with --try, every extension built, holds SASS and imports); "
        "1: a --try extension failed; 2: bad input (nothing written).",
    )
    p.add_argument("target", metavar="URL|PATH", help="a git URL (https://github.com/owner/repo) or a local directory")
    p.add_argument(
        "--commit",
        metavar="HASH",
        help="commit, branch or tag to read (default: the remote's HEAD), recorded as a full hash",
    )
    p.add_argument("--name", help="the recipe's name (default: from the repository's name)")
    p.add_argument("--mirror", type=Path, metavar="DIR", help="local git mirrors to read from instead of the network")
    p.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        default=Path("envbuilder-recipes"),
        help="the recipe folder to write (default: ./envbuilder-recipes); never overwritten",
    )
    p.add_argument(
        "--try",
        dest="trial",
        action="store_true",
        help="then build sources, patches and extensions for this host's arch (no smoke run) and report each extension",
    )
    p.add_argument("--arch", help="with --try: the arch to build for (default: the GPUs present)")
    p.add_argument(
        "--prefix", type=Path, help="with --try: where the trial env goes (default: $ENVBUILDER_HOME/try/<name>)"
    )
    add_json_option(p)
    p.set_defaults(func=cmd_new)


def cmd_new(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.new.command import new

    result = new(args.target, commit=args.commit, name=args.name, mirror=args.mirror, output=args.output)
    code = EXIT_OK
    if args.trial:
        from envbuilder.new import trial

        if not args.json:
            report.new_result(result)
            report.err.print(f"trying [bold]{result.draft.name}[/]: sources, patches and extensions (no smoke run)")
        outcome = trial.run(
            result.output,
            result.draft.name,
            arch=args.arch,
            mirror=args.mirror,
            prefix=args.prefix,
            reporter=None if args.json else report.ProgressReporter(),
        )
        result.trial = outcome.to_json()
        code = EXIT_OK if outcome.ok else EXIT_FAILED
        if args.json:
            report.print_json(result.to_json())
        else:
            report.new_trial(outcome)
        return code
    if args.json:
        report.print_json(result.to_json())
    else:
        report.new_result(result)
    return code
