"""envbuilder inspect FILE.so…: which SASS and PTX archs a binary holds (and whether it runs on an arch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from envbuilder.cli.options import add_json_option
from envbuilder.errors import EXIT_FAILED, EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("inspect", help="which SASS and PTX archs a binary holds")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--arch", help="also check that each binary can run on these archs (exit 1 if not)")
    add_json_option(p)
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from envbuilder import fatbin, report
    from envbuilder.host.compat import parse_arch_list

    archs = parse_arch_list(args.arch) if args.arch else ()
    reports = [fatbin.inspect_file(f) for f in args.files]
    missing = []
    data: list[dict[str, Any]] = []
    for r in reports:
        coverage = {str(a): r.runs_on(a.major, a.minor, a.suffix) for a in archs}
        missing += [f"{r.path}: {a}" for a, how in coverage.items() if how is None]
        data.append({**r.to_json(), **({"runs_on": coverage} if archs else {})})
    if args.json:
        report.print_json(data)
    else:
        report.inspected(reports, data)
    if missing:
        report.err.print("[red]missing:[/] " + "; ".join(missing))
        return EXIT_FAILED
    return EXIT_OK
