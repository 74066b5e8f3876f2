"""Command line: parse, call one function, render (envbuilder/report.py). One module per
command group; each registers its parsers and returns exit codes decided in errors.py
(0 ok, 1 failed, 2 bad input, 3 blocked on gated assets, 130 interrupted).

Start-up stays light (no torch, nothing heavy): `envbuilder plan` must print in well under 300 ms.
"""

from __future__ import annotations

import argparse
import sys

from envbuilder import __version__
from envbuilder.cli import (
    assets,
    build,
    bundle,
    cache,
    diagnose,
    doctor,
    inspect,
    lock,
    matrix,
    new,
    patch,
    recipes,
    run,
    smoke,
    toolkit,
)
from envbuilder.errors import EXIT_INTERRUPTED, EnvbuilderError

GROUPS = (
    recipes,
    build,
    lock,
    bundle,
    cache,
    run,
    smoke,
    patch,
    assets,
    toolkit,
    matrix,
    inspect,
    doctor,
    diagnose,
    new,
)
# command -> how its older spellings become today's (nested verbs came later)
REWRITES = {"assets": assets.rewrite, "patch": patch.rewrite, "bundle": bundle.rewrite}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envbuilder",
        description="Reproducible environments for CUDA research code on NVIDIA Blackwell (sm_120).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"envbuilder {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def today(argv: list[str]) -> list[str]:
    """argv with older spellings of a command rewritten to today's."""
    at = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if at is not None and argv[at] in REWRITES:
        return REWRITES[argv[at]](argv, at)
    return argv


def main(argv: list[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(today(list(sys.argv[1:] if argv is None else argv)))
        return int(args.func(args))
    except EnvbuilderError as exc:
        from envbuilder import report

        if args is not None and args.debug:
            import traceback

            traceback.print_exc()
        if args is not None and getattr(args, "json", False):
            report.print_json({"ok": False, **exc.to_json()})
        report.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("envbuilder: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
