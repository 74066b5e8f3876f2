"""envbuilder diagnose LOGFILE: known error signatures in a log, with cause and fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from envbuilder.cli.options import add_json_option
from envbuilder.errors import EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diagnose", help="known error signatures in a build log, with fixes")
    p.add_argument("log", type=Path, metavar="LOGFILE")
    add_json_option(p)
    p.set_defaults(func=cmd_diagnose)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from envbuilder import diagnose, report

    findings = diagnose.scan_file(args.log)
    if args.json:
        report.print_json([f.to_json() for f in findings])
    else:
        report.diagnoses(findings)
    return EXIT_OK
