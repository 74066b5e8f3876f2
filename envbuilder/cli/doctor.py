"""envbuilder doctor: this host's toolkits, compilers, Pythons and GPUs, and a canary compile."""

from __future__ import annotations

import argparse

from envbuilder.cli.options import add_json_option
from envbuilder.errors import EXIT_FAILED, EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="report this host and whether it can build for an arch")
    p.add_argument("--arch", help="arch(s) to check (default: the GPUs present, else 12.0)")
    p.add_argument("--no-compile", action="store_true", help="skip compiling the canary program")
    add_json_option(p)
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from envbuilder import doctor, report
    from envbuilder.host import discover
    from envbuilder.host.compat import parse_arch_list
    from envbuilder.recipe.catalog import Catalog

    host = discover(gpus=True)
    if args.arch:
        archs = parse_arch_list(args.arch)
    elif host.gpus:
        archs = parse_arch_list(";".join(sorted({g.compute_capability for g in host.gpus})))
    else:
        archs = parse_arch_list("12.0")
    verdicts = doctor.toolkit_verdicts(host, archs)
    canary = None
    if not args.no_compile:
        if not args.json:
            report.err.print(f"compiling the canary program for {', '.join(str(a) for a in archs)} …")
        canary = doctor.compile_canary(host, archs, Catalog.default().extension("canary").file.parent, verdicts)
    can_build = any(v["ok"] for v in verdicts) and (canary is None or bool(canary.get("ok")))
    data = {
        "host": host.to_json(),
        "archs": [str(a) for a in archs],
        "toolkits": verdicts,
        "canary": canary,
        "can_build": can_build,
    }
    if args.json:
        report.print_json(data)
    else:
        report.doctor(host, archs, verdicts, canary, can_build)
    return EXIT_OK if can_build else EXIT_FAILED
