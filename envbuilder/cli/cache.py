"""envbuilder cache list|gc|push|pull: the local extension-wheel cache, and a shared one on an
OCI registry or in a shared folder (envbuilder/remote.py)."""

from __future__ import annotations

import argparse
from typing import Any

from envbuilder.cli.options import add_json_option
from envbuilder.errors import EXIT_FAILED, EXIT_OK, InputError

REMOTE_HELP = "oci://host[:port]/namespace/name (an OCI registry) or file:///path (a shared folder)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cache",
        help="the built-extension cache: list, gc, and push/pull to an OCI registry or shared folder",
        description="Credentials come from ENVBUILDER_REGISTRY_USERNAME/PASSWORD or ~/.docker/config.json "
        "(auths, credHelpers, credsStore); never from the command line. Exit 2: bad input or refused credentials.",
    )
    actions = p.add_subparsers(dest="cache_action", metavar="ACTION", required=True)

    q = actions.add_parser("list", help="cached extension wheels: key, extension, archs, size, last use")
    add_json_option(q)
    q.set_defaults(func=cmd_list)

    q = actions.add_parser("gc", help="remove least recently used entries until the cache fits in SIZE")
    q.add_argument("--max-size", required=True, metavar="SIZE", help="e.g. 20G, 500M (powers of 1024), or bytes")
    add_json_option(q)
    q.set_defaults(func=cmd_gc)

    q = actions.add_parser("push", help="publish cached extension wheels of recipes (or --all) to REMOTE")
    q.add_argument("remote", metavar="REMOTE", help=REMOTE_HELP)
    q.add_argument("recipes", nargs="*", metavar="RECIPE", help="push the entries these recipes built or used")
    q.add_argument("--all", action="store_true", help="push every entry of the local cache")
    _remote_options(q)
    q.set_defaults(func=cmd_push)

    q = actions.add_parser("pull", help="fetch the artefacts of recipes (default: all) from REMOTE, verified")
    q.add_argument("remote", metavar="REMOTE", help=REMOTE_HELP)
    q.add_argument("recipes", nargs="*", metavar="RECIPE", help="only artefacts these recipes use")
    _remote_options(q)
    q.set_defaults(func=cmd_pull)


def _remote_options(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP to a registry that is not on loopback (also ENVBUILDER_CACHE_INSECURE=1)",
    )
    add_json_option(q)


def _store() -> Any:
    from envbuilder.cache import WheelCache
    from envbuilder.paths import cache_dir

    return WheelCache(cache_dir() / "wheels")


def _open(args: argparse.Namespace, push: bool) -> Any:
    import os

    from envbuilder import remote

    insecure = args.insecure or os.environ.get(remote.INSECURE_VAR, "") not in ("", "0")
    return remote.open_remote(args.remote, insecure=insecure, push=push)


def cmd_list(args: argparse.Namespace) -> int:
    from envbuilder import report

    entries = _store().entries()
    if args.json:
        report.print_json([e.to_json() for e in entries])
    else:
        report.cache_entries([e.to_json() for e in entries])
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.cache import parse_size

    limit = parse_size(args.max_size)
    removed, kept = _store().gc(limit)
    if args.json:
        report.print_json({"removed": [e.to_json() for e in removed], "kept_bytes": kept, "max_size": limit})
    else:
        report.cache_gc([e.to_json() for e in removed], kept, limit)
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.errors import ArtefactRefused

    if args.all == bool(args.recipes):
        raise InputError(
            "name the recipes whose extensions to push, or --all (not both)",
            hint="envbuilder cache push oci://ghcr.io/lab/envbuilder-cache 4dgaussians",
        )
    entries = _store().entries()
    chosen = entries if args.all else [e for e in entries if set(e.recipes) & set(args.recipes)]
    if not chosen:
        unlabelled = sum(1 for e in entries if not e.recipes)
        raise InputError(
            "nothing to push: the local cache has no extension wheel "
            + ("at all" if args.all or not entries else f"of {', '.join(args.recipes)}"),
            hint=f"build the recipe first; {unlabelled} entries record no recipe (stored by an older envbuilder): "
            "push them with --all"
            if unlabelled
            else "build the recipe first (envbuilder build RECIPE)",
        )
    target = _open(args, push=True)
    rows = []
    code = EXIT_OK
    for e in chosen:
        row = {"key": e.key, "extension": e.extension, "archs": e.archs, "wheel": e.wheel.name}
        try:
            done = target.publish(e.key, e.wheel, e.metadata())
            row.update(status=done.status, tag=done.tag, digest=done.digest, sent_bytes=done.sent_bytes, note=done.note)
        except ArtefactRefused as exc:
            row.update(status="refused", note=exc.message)
            code = EXIT_FAILED
        rows.append(row)
    if args.json:
        report.print_json({"remote": args.remote, "results": rows, "exit_code": code})
    else:
        report.cache_transfers(f"envbuilder cache push {args.remote}", rows)
    return code


def cmd_pull(args: argparse.Namespace) -> int:
    from envbuilder import remote, report
    from envbuilder.host.compat import parse_arch_list

    source = _open(args, push=False)
    store = _store()
    listed = [a for a in source.artefacts() if not args.recipes or set(a.recipes) & set(args.recipes)]
    if not listed and args.recipes:
        raise InputError(
            f"{args.remote} holds no artefact of {', '.join(args.recipes)}", hint="push it from a machine that built it"
        )
    rows = []
    code = EXIT_OK
    for a in listed:
        row = {"key": a.key, "extension": a.extension, "archs": a.archs, "wheel": a.wheel, "size": a.size}
        try:
            archs = parse_arch_list(a.archs)
        except InputError:
            row.update(status="refused", note=f"its arch list {a.archs!r} is not one")
            code = EXIT_FAILED
            rows.append(row)
            continue
        with store.claim(a.key):
            cached, _ = store.lookup(a.key, archs)
            if cached is not None:
                row.update(status="already cached")
            else:
                wheel, why = remote.restore(source, store, a.key, archs)
                row.update(status="pulled" if wheel is not None else "not pulled", note=why)
                if wheel is None:
                    code = EXIT_FAILED
        rows.append(row)
    if args.json:
        report.print_json({"remote": args.remote, "results": rows, "exit_code": code})
    else:
        report.cache_transfers(f"envbuilder cache pull {args.remote}", rows)
    return code
