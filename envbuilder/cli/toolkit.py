"""envbuilder toolkit list | install RELEASE: CUDA toolkits found here; CUDA 13.x from PyPI wheels."""

from __future__ import annotations

import argparse

from envbuilder.cli.options import add_json_option
from envbuilder.errors import EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("toolkit", help="list CUDA toolkits, or install a CUDA 13.x toolkit from PyPI wheels")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("list", help="the CUDA toolkits envbuilder finds on this machine")
    add_json_option(p)
    p.set_defaults(func=cmd_list)
    p = verbs.add_parser("install", help="assemble a CUDA 13.x toolkit from NVIDIA's PyPI wheels")
    p.add_argument("release", help="the CUDA release, e.g. 13.0 or 13.2")
    add_json_option(p)
    p.set_defaults(func=cmd_install)


def cmd_install(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.host.provision import check_release, install, toolkits_dir

    check_release(args.release)
    log = toolkits_dir() / f"install-{args.release}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not args.json:
        report.err.print(f"installing CUDA {args.release} from PyPI wheels (log: {log}) …")
    root, version, new = install(args.release, log)
    if args.json:
        report.print_json({"cuda_home": str(root), "nvcc": str(version), "installed": new})
    else:
        state = "installed" if new else "already installed"
        report.out.print(f"{state}: CUDA {version} at {root}  (use: --cuda {args.release})")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.host import discover

    found = [t.to_json() for t in discover(gpus=False).toolkits]
    if args.json:
        report.print_json(found)
    else:
        report.toolkits(found)
    return EXIT_OK
