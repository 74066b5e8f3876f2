"""envbuilder diagnose LOGFILE|- | --list: known failures in a log, with cause and fix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envbuilder.cli.options import add_json_option
from envbuilder.errors import EXIT_OK, InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "diagnose",
        help="known failures in a log (or - for standard input), with cause and fix",
        description="envbuilder diagnose LOGFILE | some-command 2>&1 | envbuilder diagnose - | envbuilder diagnose --list. "
        "Root causes come first; consequences of them (a failed wheel build, a missing module) after.",
    )
    p.add_argument("log", nargs="?", metavar="LOGFILE", help="the log to read; - reads standard input")
    p.add_argument("--list", action="store_true", help="print the catalogue of known failures instead")
    add_json_option(p)
    p.set_defaults(func=cmd_diagnose)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.buffer.read().decode("utf-8", errors="replace")
    try:
        return Path(name).read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputError(
            f"{name}: cannot read: {exc.strerror}", hint="give a log file, or - to read standard input"
        ) from None


def cmd_diagnose(args: argparse.Namespace) -> int:
    from envbuilder import diagnose, report

    if args.list:
        cat = diagnose.Catalogue.default()
        if args.json:
            report.print_json([s.to_json() for s in cat.signatures])
        else:
            report.signature_catalogue(cat)
        return EXIT_OK
    if args.log is None:
        raise InputError("nothing to diagnose", hint="envbuilder diagnose LOGFILE, or - for standard input, or --list")
    findings = diagnose.scan(_read(args.log))
    if args.json:
        report.print_json([f.to_json() for f in findings])
    else:
        report.diagnoses(findings)
    return EXIT_OK
