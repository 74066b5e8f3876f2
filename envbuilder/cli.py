"""Command line: parse, call one function, render. Exit codes: 0 ok, 1 failed, 2 bad input,
3 blocked on gated assets, 130 interrupted.

Start-up stays light (no torch, nothing heavy): `envbuilder plan` must print in well under 300 ms.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from envbuilder import __version__
from envbuilder.errors import EXIT_FAILED, EXIT_OK, EnvbuilderError, InputError


def _add_recipes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--recipes",
        metavar="DIR",
        action="append",
        type=Path,
        default=[],
        help="extra recipe folder, searched before $ENVBUILDER_PATH and the built-in recipes (repeatable)",
    )


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe name (see `envbuilder list`)")
    p.add_argument(
        "--arch", help='GPU arch(s) to build for: 12.0 (RTX 50xx), "9.0;12.0", 12.0+PTX. Default: the GPUs present'
    )
    p.add_argument("--cuda", help="CUDA toolkit version (12.8, 13.0) or its directory. Default: newest that fits")
    p.add_argument(
        "--python", help="Python version (3.12) or interpreter path. Default: this Python if the recipe allows it"
    )
    p.add_argument("--prefix", type=Path, help="where the env goes. Default: $ENVBUILDER_HOME/envs/<recipe>")
    p.add_argument("--jobs", type=int, help="parallel compile jobs (MAX_JOBS). Default: from cores and RAM")
    p.add_argument("--mirror", type=Path, metavar="DIR", help="local git mirrors to clone from instead of the network")
    p.add_argument(
        "--system-site-packages",
        action="store_true",
        help="let the venv see the interpreter's packages (reuse an installed torch)",
    )
    p.add_argument(
        "--installer",
        choices=("auto", "uv", "pip"),
        default="auto",
        help="venv/installer backend (default: uv if on PATH)",
    )
    p.add_argument("--no-smoke", action="store_true", help="do not run the smoke training even with a GPU")
    p.add_argument(
        "--stub-assets",
        action="store_true",
        help="let the smoke run use stand-ins for missing gated models (results are marked stub-driven)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_recipes_option(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envbuilder",
        description="Reproducible environments for CUDA research code on NVIDIA Blackwell (sm_120).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"envbuilder {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="recipes and whether they are built here")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_recipes_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one recipe in detail")
    p.add_argument("recipe")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_recipes_option(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("plan", help="what `build` would do, and why (nothing is written)")
    _add_plan_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("build", help="build the recipe's environment")
    _add_plan_options(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "smoke",
        help="run a built env's smoke training and render on this machine's GPU, with checks",
        description="Exit 0: every step ran and passed its checks; 1: a step failed; "
        "3: blocked on gated assets, or only stand-ins made it run.",
    )
    p.add_argument("recipe")
    p.add_argument("--prefix", type=Path, help="the env (default: $ENVBUILDER_HOME/envs/<recipe>)")
    p.add_argument("--stub-assets", action="store_true", help="write stand-ins for missing gated models first")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_recipes_option(p)
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser(
        "patch",
        help="check, apply or revert a recipe's source patches in a tree you cloned yourself; or --scan a tree",
        description="Without a mode, --check: report what would change. Exit 1 when a patch cannot apply.",
    )
    p.add_argument("recipe", nargs="?", help="recipe whose patches to use")
    p.add_argument("--source", type=Path, metavar="DIR", help="the method's source tree (a clone with submodules)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_const", const="check", dest="mode", help="report only (default)")
    mode.add_argument("--apply", action="store_const", const="apply", dest="mode", help="apply the patches")
    mode.add_argument("--revert", action="store_const", const="revert", dest="mode", help="undo applied patches")
    mode.add_argument("--scan", type=Path, metavar="DIR", help="find cstdint/cfloat/C++-standard problems in any tree")
    p.add_argument("--diff", action="store_true", help="print the unified diff of the changes")
    p.add_argument(
        "--torch", help="torch version the tree will be built with (default: the torch this Python can import)"
    )
    p.add_argument("--cuda", help="CUDA version for conditions (default: the newest toolkit found)")
    p.add_argument("--gcc", help="host gcc version for conditions (default: this machine's g++)")
    p.add_argument("--arch", help="archs for conditions")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_recipes_option(p)
    p.set_defaults(func=cmd_patch, mode="check")

    p = sub.add_parser(
        "assets",
        help="which gated and free assets a recipe needs, and whether they are in place",
        description="envbuilder assets RECIPE | assets install RECIPE FILE... | assets fetch RECIPE | assets stub RECIPE --dest DIR. "
        "Exit 0: all present and valid; 3: something is missing; 1: something present is invalid.",
    )
    p.add_argument("words", nargs="+", metavar="[install|fetch|stub] RECIPE [FILE ...]")
    p.add_argument(
        "--root", type=Path, metavar="DIR", help="the method's source tree (default: the built env's src/<recipe>)"
    )
    p.add_argument(
        "--prefix", type=Path, help="the env whose source tree to use (default: $ENVBUILDER_HOME/envs/<recipe>)"
    )
    p.add_argument("--dest", type=Path, metavar="DIR", help="with stub: the source tree to write stand-ins into")
    p.add_argument("--python", type=Path, help="with stub: a Python with numpy (default: the env's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_recipes_option(p)
    p.set_defaults(func=cmd_assets)

    p = sub.add_parser("toolkit", help="list CUDA toolkits, or install a CUDA 13.x toolkit from PyPI wheels")
    p.add_argument("action", choices=("list", "install"))
    p.add_argument("release", nargs="?", help="with install: the CUDA release, e.g. 13.0 or 13.2")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_toolkit)

    p = sub.add_parser("matrix", help="recipes x CUDA x Python, for your own CI")
    p.add_argument("recipes_named", nargs="*", metavar="RECIPE", help="default: every recipe")
    p.add_argument("--arch", default="12.0", help="arch list every row builds for (default 12.0)")
    p.add_argument("--cuda", action="append", help="only these CUDA releases (repeatable)")
    p.add_argument("--python", action="append", help="only these Pythons (repeatable)")
    p.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="github: a NAME=… line for $GITHUB_OUTPUT",
    )
    p.add_argument("--name", default="matrix", help="with --format github: the output's name (default matrix)")
    _add_recipes_option(p)
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("inspect", help="which SASS and PTX archs a binary holds")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--arch", help="also check that each binary can run on these archs (exit 1 if not)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("doctor", help="report this host and whether it can build for an arch")
    p.add_argument("--arch", help="arch(s) to check (default: the GPUs present, else 12.0)")
    p.add_argument("--no-compile", action="store_true", help="skip compiling the canary program")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("diagnose", help="known error signatures in a build log, with fixes")
    p.add_argument("log", type=Path, metavar="LOGFILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_diagnose)
    return parser


def _catalog(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from envbuilder.recipe.catalog import Catalog

    return Catalog.default(args.recipes)


def cmd_list(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.paths import default_prefix

    catalog = _catalog(args)
    rows = []
    for name, (path, origin) in sorted(catalog.recipe_files().items()):
        prefix = default_prefix(name)
        status = (
            "built"
            if (prefix / "envbuilder.lock.json").exists()
            else "incomplete"
            if (prefix / ".envbuilder").exists()
            else "-"
        )
        try:
            recipe = catalog.recipe(name)
            summary, error = recipe.summary, None
        except EnvbuilderError as exc:
            summary, error = "", exc.message
        rows.append(
            {
                "name": name,
                "summary": summary,
                "file": str(path),
                "origin": origin,
                "status": status,
                "prefix": str(prefix),
                "error": error,
            }
        )
    if args.json:
        report.print_json(rows)
    else:
        report.table(
            None,
            ["recipe", "status", "origin", "summary"],
            [[r["name"], r["status"], r["origin"], r["summary"] or f"[red]invalid: {r['error']}[/]"] for r in rows],
        )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.recipe.model import GitSource

    recipe = _catalog(args).recipe(args.recipe)
    source = recipe.source.to_json()
    data = {
        "name": recipe.name,
        "summary": recipe.summary,
        "file": str(recipe.file),
        "license": recipe.license,
        "notes": recipe.notes,
        "source": source,
        "python": str(recipe.python),
        "torch": [v.to_json() for v in recipe.torch],
        "requirements": [
            {
                "req": r.text,
                "when": str(r.when) if r.when else None,
                "why": r.why,
                "no_build_isolation": r.no_build_isolation,
            }
            for r in recipe.requirements
        ],
        "extensions": [
            {
                "name": e.name,
                "path": e.path,
                "import": e.extension.import_name,
                "summary": e.extension.summary,
                "source": e.extension.source.to_json() if e.extension.source else None,
                "patches": [p.name for p in e.extension.patches],
                "when": str(e.when) if e.when else None,
            }
            for e in recipe.extensions
        ],
        "patches": [
            {"name": p.name, "files": list(p.targets), "when": str(p.condition) if p.condition else None}
            for p in recipe.patches
        ],
        "assets": [
            {"name": a.name, "path": a.path, "kind": a.kind, "gated": a.gated, "source": a.source}
            for a in recipe.assets
        ],
        "smoke": [{"name": st.name, "run": list(st.run), "needs": list(st.needs)} for st in recipe.smoke.steps]
        if recipe.smoke
        else [],
        "env": dict(recipe.env),
    }
    if args.json:
        report.print_json(data)
        return EXIT_OK
    src = recipe.source
    rows = [
        ("recipe", f"{recipe.name}: {recipe.summary}"),
        ("file", str(recipe.file)),
        ("license", recipe.license or "-"),
        ("source", f"{src.url} @ {src.commit}" if isinstance(src, GitSource) else str(src.path)),
        ("python", str(recipe.python)),
    ]
    rows += [(f"torch {v.tag}", " ".join(v.requirements()) + f"  ({v.index or 'PyPI'})") for v in recipe.torch]
    rows += [
        ("requires", r.text + (f"  when {r.when}" if r.when else "") + (f"  # {r.why}" if r.why else ""))
        for r in recipe.requirements
    ]
    for e in recipe.extensions:
        where = f"from {e.extension.source.url} @ {e.extension.source.commit[:12]}" if e.extension.source else f"at {e.path}"
        fixes = f" (patches: {', '.join(p.name for p in e.extension.patches)})" if e.extension.patches else ""
        rows.append(("extension", f"{e.name} {where}, import {e.extension.import_name}{fixes}"))
    for p in recipe.patches:
        rows.append(("patch", f"{p.name} on {', '.join(p.targets)}" + (f" when {p.condition}" if p.condition else "")))
    for a in recipe.assets:
        rows.append(("asset", f"{a.name}: {a.path} ({'gated: ' + (a.register or '') if a.gated else 'free'})"))
    for st in recipe.smoke.steps if recipe.smoke else ():
        rows.append(("smoke", f"{st.name}: {' '.join(st.run)}"))
    if recipe.notes:
        rows.append(("notes", recipe.notes))
    report.kv_table(f"envbuilder show {recipe.name}", rows)
    return EXIT_OK


def _make_plan(args: argparse.Namespace, plan_only: bool = False):  # type: ignore[no-untyped-def]
    import dataclasses

    from packaging.version import Version

    from envbuilder.cache import tree_digest
    from envbuilder.host import discover
    from envbuilder.host.toolchain import Interpreter, interpreter_facts
    from envbuilder.plan import Options, make_plan
    from envbuilder.recipe.model import PathSource

    recipe = _catalog(args).recipe(args.recipe)
    extra_toolkits = [(Path(args.cuda), "--cuda")] if args.cuda and "/" in args.cuda else None
    host = discover(extra_toolkits=extra_toolkits)
    if args.python and "/" in args.python:
        exe = Path(args.python)
        try:
            facts = interpreter_facts(exe)
        except EnvbuilderError:
            raise InputError(f"--python {exe}: not a Python interpreter this machine can run") from None
        chosen = Interpreter(exe, Version(facts["version"]), "--python")
        host = dataclasses.replace(host, interpreters=(chosen, *host.interpreters))
    if args.mirror and not args.mirror.is_dir():
        raise InputError(f"--mirror {args.mirror}: not a directory")
    digest = (
        tree_digest(recipe.source.path)
        if isinstance(recipe.source, PathSource) and recipe.source.path.is_dir()
        else None
    )
    options = Options(
        arch=args.arch,
        cuda=args.cuda,
        python=args.python,
        prefix=args.prefix,
        jobs=args.jobs,
        mirror=args.mirror.resolve() if args.mirror else None,
        system_site_packages=args.system_site_packages,
        installer=args.installer,
        source_digest=digest,
        plan_only=plan_only,
        smoke=not args.no_smoke,
        stub_assets=args.stub_assets,
    )
    return make_plan(recipe, host, options), host


def cmd_plan(args: argparse.Namespace) -> int:
    from envbuilder import report

    plan, _ = _make_plan(args, plan_only=True)
    if args.json:
        report.print_json(plan.to_json())
    else:
        report.plan_text(plan)
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.execute import execute

    plan, host = _make_plan(args)
    for w in plan.warnings:
        report.warn(w)
    if not args.json:
        report.err.print(f"building [bold]{plan.recipe.name}[/] for {plan.torch_cuda_arch_list} into {plan.prefix}")
    result = execute(plan, host, report.ProgressReporter())
    checked = result.outputs.get("assets", {})
    smoked = result.outputs.get("smoke", {})
    codes = {int(checked.get("exit_code", EXIT_OK)), int(smoked.get("exit_code", EXIT_OK))}
    code = EXIT_FAILED if EXIT_FAILED in codes else max(codes)
    if args.json:
        report.print_json(
            {
                **result.to_json(),
                "exit_code": code,
                "assets_exit_code": int(checked.get("exit_code", EXIT_OK)),
                "blocked": checked.get("blocked", {}),
                "smoke": smoked,
            }
        )
        return code
    report.out.print(f"[green]ready:[/] {result.prefix}  (activate: source {result.prefix}/venv/bin/activate)")
    report.out.print(f"manifest: {result.manifest}")
    if smoked.get("steps"):
        _render_smoke(smoked)
    elif smoked.get("skipped"):
        report.out.print(f"smoke run: skipped ({smoked['skipped']})")
    if checked.get("exit_code", EXIT_OK) != EXIT_OK:
        from envbuilder import assets

        statuses = assets.check(plan.recipe, Path(result.outputs["sources"]["root"]))
        _render_assets(plan.recipe.name, Path(result.outputs["sources"]["root"]), statuses)
        report.out.print(
            f"the env is built; the smoke run is blocked on assets (exit {code}): "
            f"see `envbuilder assets {plan.recipe.name}`"
        )
    return code


def cmd_smoke(args: argparse.Namespace) -> int:
    from envbuilder import report, smoke
    from envbuilder.host.gpu import find_gpus
    from envbuilder.paths import default_prefix

    recipe = _catalog(args).recipe(args.recipe)
    prefix: Path = (args.prefix or default_prefix(recipe.name)).absolute()
    if not (prefix / "envbuilder.lock.json").is_file():
        raise InputError(
            f"no finished env at {prefix} (no envbuilder.lock.json)",
            hint=f"build it first: envbuilder build {recipe.name}"
            + (f" --prefix {args.prefix}" if args.prefix else ""),
        )
    gpus, why_none = find_gpus()
    if not gpus:
        raise InputError(
            f"no GPU to run the smoke training on: {why_none}",
            hint="run `envbuilder smoke` on the machine with the GPU; `build` already ran the checks that need no GPU",
        )
    quiet = args.json
    result = smoke.run(
        recipe,
        prefix,
        stub_assets=args.stub_assets,
        note=None if quiet else (lambda text: report.err.print(f"  {text}")),
    )
    if args.json:
        report.print_json({**result.to_json(), "exit_code": result.exit_code})
    else:
        _render_smoke(result.to_json())
    return result.exit_code


def _render_smoke(data: dict[str, Any]) -> None:
    from envbuilder import report

    colour = {"ok": "green", "failed": "red", "blocked": "yellow", "skipped": "yellow"}
    rows = []
    for step in data["steps"]:
        shown = {k: v for k, v in step["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
        detail = step["detail"] or ""
        if step["blocked_by"]:
            detail = "needs " + ", ".join(step["blocked_by"])
        rows.append(
            [
                step["name"],
                f"[{colour.get(step['status'], 'red')}]{step['status']}[/]",
                f"{step['seconds']:.0f} s",
                metrics,
                detail,
            ]
        )
    title = f"smoke run of {data['recipe']}" + (
        " [yellow](stub-driven: stand-ins for " + ", ".join(data["stubs"]) + ")[/]" if data["stub_driven"] else ""
    )
    report.table(title, ["step", "status", "time", "metrics", "detail"], rows)


def _assets_root(args: argparse.Namespace, recipe_name: str, required: bool) -> Path:
    from envbuilder.paths import default_prefix

    root: Path = args.root or (args.prefix or default_prefix(recipe_name)) / "src" / recipe_name
    if required and not root.is_dir():
        raise InputError(
            f"no source tree at {root}",
            hint=f"build it first (envbuilder build {recipe_name}), or pass --root DIR for your own clone",
        )
    return root


def cmd_assets(args: argparse.Namespace) -> int:
    from envbuilder import assets, report
    from envbuilder.paths import cache_dir

    action = args.words[0] if args.words[0] in ("install", "fetch", "stub") else "check"
    rest = args.words[1:] if action != "check" else args.words
    if not rest:
        raise InputError(f"assets {action}: name the recipe", hint="envbuilder assets cap4d")
    recipe = _catalog(args).recipe(rest[0])
    files = [Path(f) for f in rest[1:]]
    if action != "install" and files:
        raise InputError(f"assets {action} takes one recipe, got extra arguments: {' '.join(rest[1:])}")
    if action == "install":
        if not files:
            raise InputError(
                "assets install: name the downloaded files",
                hint=f"envbuilder assets install {recipe.name} ~/Downloads/FLAME2023.zip",
            )
        root = _assets_root(args, recipe.name, required=True)
        done, warnings = assets.install(recipe, root, files)
        _record_assets_in_manifest(root, recipe.name, args)
        for w in warnings:
            report.warn(w)
        if args.json:
            report.print_json({"installed": [d.to_json() for d in done], "warnings": warnings})
        else:
            for d in done:
                report.out.print(f"[green]installed[/] {d.asset.name}: {d.source} -> {d.path} ({d.detail})")
        return EXIT_OK
    if action == "fetch":
        root = _assets_root(args, recipe.name, required=True)
        results = _fetch_with_progress(recipe, root, cache_dir(), quiet=args.json)
        _record_assets_in_manifest(root, recipe.name, args)
        if args.json:
            report.print_json(results)
        else:
            for r in results:
                report.out.print(f"{r['name']}: {r['result']}")
        return assets.exit_code(assets.check(recipe, root))
    if action == "stub":
        root = args.dest or _assets_root(args, recipe.name, required=True)
        root.mkdir(parents=True, exist_ok=True)
        python = args.python or _env_python(args, recipe.name)
        written, skipped = assets.stub(recipe, root, python)
        if args.json:
            report.print_json({"written": written, "skipped": skipped, "root": str(root)})
        else:
            for name in written:
                report.out.print(
                    f"[yellow]stand-in[/] {name} written (random values: anything run on it is a stub run)"
                )
            for line in skipped:
                report.out.print(f"skipped {line}")
        return EXIT_OK
    root = _assets_root(args, recipe.name, required=False)
    statuses = assets.check(recipe, root)
    code = assets.exit_code(statuses)
    if args.json:
        report.print_json(
            {
                "recipe": recipe.name,
                "root": str(root),
                "exit_code": code,
                "assets": [s.to_json() for s in statuses],
                "blocked": assets.blocked_steps(statuses),
            }
        )
        return code
    _render_assets(recipe.name, root, statuses)
    return code


def _env_python(args: argparse.Namespace, recipe_name: str) -> Path:
    from envbuilder.paths import default_prefix

    python = (args.prefix or default_prefix(recipe_name)) / "venv" / "bin" / "python"
    return python if python.exists() else Path(sys.executable)


def _fetch_with_progress(recipe: Any, root: Path, cache: Path, quiet: bool) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from envbuilder import assets, report

    with Progress(
        "{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=report.err, disable=quiet
    ) as progress:

        def progress_for(asset: Any) -> Any:
            task = progress.add_task(asset.name, total=None)
            return lambda done, total: progress.update(task, completed=done, total=total)

        return assets.fetch(recipe, root, cache, progress_for)


def _record_assets_in_manifest(root: Path, recipe_name: str, args: argparse.Namespace) -> None:
    """The env's manifest lists its assets (sha256 and how far each is trusted)."""
    import json as _json
    import os
    import tempfile

    from envbuilder.assets import Registry

    manifest = root.parent.parent / "envbuilder.lock.json"
    if root.parent.name != "src" or not manifest.is_file():
        return
    data = _json.loads(manifest.read_text())
    registry = Registry.load(root)
    data["assets_installed"] = registry.installed
    data["assets_stubs"] = registry.stubs
    fd, tmp = tempfile.mkstemp(prefix=".envbuilder.lock.", dir=manifest.parent)
    with os.fdopen(fd, "w") as f:
        _json.dump(data, f, indent=2)
    os.replace(tmp, manifest)


def _render_assets(recipe: str, root: Path, statuses: list[Any]) -> None:
    from envbuilder import assets, report

    if not statuses:
        report.out.print(f"{recipe} needs no assets")
        return
    colour = {"ok": "green", "missing": "yellow"}
    rows = []
    for s in statuses:
        a = s.asset
        status = f"[{colour.get(s.status, 'red')}]{s.status}[/]" + (" [yellow](stand-in)[/]" if s.stub else "")
        where = a.register if a.gated else (a.url or a.source)
        rows.append([a.name, status, str(s.path), ("gated: " if a.gated else "free: ") + (where or "-"), s.detail])
    report.table(f"assets of {recipe} (root {root})", ["asset", "status", "destination", "get it", "detail"], rows)
    blocked = assets.blocked_steps(statuses)
    for step, names in blocked.items():
        report.out.print(f"[yellow]blocked:[/] smoke step '{step}' needs {', '.join(names)}")
    if not root.is_dir():
        report.out.print(f"(no source tree at {root} yet: build first, or pass --root DIR)")


def _patch_context(args: argparse.Namespace) -> Any:
    """Facts for `when:` conditions outside a build: this host, and the torch the tree will use."""
    import importlib.util

    from packaging.version import Version

    from envbuilder import patching
    from envbuilder.host import compat, discover
    from envbuilder.host.compat import parse_arch_list

    host = discover(gpus=False)
    torch_dir = None
    torch: Version | None
    if args.torch:
        torch = Version(args.torch)
    else:  # find torch without importing it (imports cost seconds and may not even work here)
        found = importlib.util.find_spec("torch")
        torch_dir = Path(found.origin).parent if found and found.origin else None
        torch = patching.torch_version_of(torch_dir) if torch_dir else None
    standard = (patching.torch_cxx_standard(torch_dir) if torch_dir else None) or (
        compat.cxx_standard(torch) if torch else None
    )
    facts = {
        "cuda": Version(args.cuda) if args.cuda else (host.toolkits[0].version if host.toolkits else None),
        "gcc": Version(args.gcc) if args.gcc else (host.compilers[0].version if host.compilers else None),
        "python": Version("%d.%d.%d" % sys.version_info[:3]),
        "torch": torch,
        "arch": [a.version for a in parse_arch_list(args.arch)] if args.arch else None,
    }
    return patching.PatchContext(facts=facts, cxx_standard=standard)


def cmd_patch(args: argparse.Namespace) -> int:
    from envbuilder import patching, report

    if args.scan:
        return _scan(args)
    if not args.recipe or not args.source:
        raise InputError(
            "patch needs a RECIPE and --source DIR (or --scan DIR)",
            hint="envbuilder patch cap4d --source ~/src/cap4d --check",
        )
    if not args.source.is_dir():
        raise InputError(f"--source {args.source}: not a directory")
    recipe = _catalog(args).recipe(args.recipe)
    context = _patch_context(args)
    sets = [(".", recipe.patches)] if recipe.patches else []
    for ext in recipe.extensions:
        if ext.extension.source is not None:
            continue  # its own repository (pytorch3d, gsplat), not part of the method's clone
        if ext.extension.patches and (ext.when is None or ext.when.evaluate(context.facts) is not False):
            sets.append((ext.path, ext.extension.patches))
    results: list[dict[str, Any]] = []
    diff_text = ""
    if args.mode == "revert":
        for rel, _ in sets:
            restored = patching.revert(args.source / rel)
            results.append({"root": rel, "reverted": restored})
    else:
        planned = [
            (rel, uses, patching.compute(args.source / rel, uses, context)) for rel, uses in sets
        ]  # every set checks before any writes
        for rel, uses, outcomes in planned:
            if args.mode == "apply":
                outcomes = patching.apply(args.source / rel, uses, context)
            diff_text += patching.unified_diff(outcomes, rel)
            results += [{"root": rel, **o.to_json()} for o in outcomes]
    data = {
        "recipe": recipe.name,
        "source": str(args.source),
        "mode": args.mode,
        "cxx_standard": context.cxx_standard,
        "facts": {
            k: (str(v) if not isinstance(v, list) else [str(x) for x in v]) if v is not None else None
            for k, v in context.facts.items()
        },
        "results": results,
    }
    if args.diff:
        data["diff"] = diff_text
    if args.json:
        report.print_json(data)
        return EXIT_OK
    if args.mode == "revert":
        for r in results:
            report.out.print(
                f"{r['root']}: " + (f"restored {', '.join(r['reverted'])}" if r["reverted"] else "nothing to revert")
            )
        return EXIT_OK
    verb = {"apply": "would apply" if args.mode == "check" else "applied", "applied": "applied"}
    report.table(
        f"patches of {recipe.name} in {args.source}",
        ["root", "patch", "status", "files", "note"],
        [
            [
                r["root"],
                r["patch"],
                verb.get(r["status"], r["status"]),
                " ".join(f["path"] for f in r["files"]) or "-",
                r["reason"],
            ]
            for r in results
        ],
    )
    if args.diff and diff_text:
        sys.stdout.write(diff_text)
    return EXIT_OK


def _scan(args: argparse.Namespace) -> int:
    from envbuilder import report, scan

    hits = scan.Scanner(args.scan).scan()
    proposals = scan.proposals(hits)
    if args.json:
        report.print_json({"root": str(args.scan), "hits": [h.to_json() for h in hits], "proposals": proposals})
        return EXIT_OK
    if not hits:
        report.out.print(f"{args.scan}: no cstdint, cfloat or C++-standard problems found")
        return EXIT_OK
    report.table(
        f"problems in {args.scan}",
        ["kind", "file:line", "code"],
        [[h.kind, f"{h.file}:{h.line}", h.text[:90]] for h in hits],
    )
    report.out.print("\nproposed patches (for the recipe's or extension's patches: list):")
    for name, files in proposals.items():
        report.out.print(f"  - {{use: {name}, files: [{', '.join(files)}]}}", markup=False)
    return EXIT_OK


def cmd_toolkit(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.host import discover
    from envbuilder.host.provision import check_release, install, toolkits_dir

    if args.action == "install":
        if not args.release:
            raise InputError("toolkit install: name a CUDA release", hint="envbuilder toolkit install 13.0")
        check_release(args.release)
        log = toolkits_dir() / f"install-{args.release}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if not args.json:
            report.err.print(f"installing CUDA {args.release} from PyPI wheels (log: {log}) …")
        root, version, new = install(args.release, log)
        if args.json:
            report.print_json({"cuda_home": str(root), "nvcc": str(version), "installed": new})
        else:
            report.out.print(
                f"{'installed' if new else 'already installed'}: CUDA {version} at {root}  (use: --cuda {args.release})"
            )
        return EXIT_OK
    host = discover(gpus=False)
    if args.json:
        report.print_json([t.to_json() for t in host.toolkits])
    else:
        report.table(
            "CUDA toolkits",
            ["version", "CUDA_HOME", "found by", "archs", "problems"],
            [
                [
                    str(t.version),
                    str(t.root),
                    t.found_by,
                    " ".join(f"sm_{c}" for c in t.sm_codes),
                    "; ".join(t.problems) or "-",
                ]
                for t in host.toolkits
            ]
            or [["-", "-", "-", "-", "no CUDA toolkit found: install one, or `envbuilder toolkit install 13.0`"]],
        )
    return EXIT_OK


def cmd_matrix(args: argparse.Namespace) -> int:
    import json

    from envbuilder import matrix, report
    from envbuilder.host.compat import parse_arch_list, torch_arch_list

    catalog = _catalog(args)
    names = args.recipes_named or [n for n in sorted(catalog.recipe_files()) if n != "canary"] + ["canary"]
    arch = torch_arch_list(parse_arch_list(args.arch))
    rows = matrix.rows([catalog.recipe(n) for n in names], arch, args.cuda, args.python)
    if args.format == "github":
        sys.stdout.write(f"{args.name}=" + json.dumps({"include": rows}, separators=(",", ":")) + "\n")
    elif args.format == "json":
        report.print_json(rows)
    else:
        report.table(
            None,
            ["recipe", "cuda", "torch", "python", "arch", "toolkit"],
            [
                [r["recipe"], r["cuda"], r["torch"], r["python"], r["arch"], r["image"] or "envbuilder toolkit install"]
                for r in rows
            ],
        )
    return EXIT_OK


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
        for r, d in zip(reports, data, strict=True):
            report.out.print(
                f"[bold]{r.path}[/]: SASS {' '.join(r.sass) or '-'}  PTX {' '.join(r.ptx) or '-'}"
                + ("" if r.has_device_code else "  (no device code)")
            )
            report.table(
                None,
                ["kind", "arch", "compression", "bytes", "section"],
                [[e.kind, e.arch, e.compression or "-", str(e.size), e.section] for e in r.entries],
            )
            for arch, how in d.get("runs_on", {}).items():
                report.out.print(
                    f"  runs on {arch}: "
                    + ({"sass": "[green]yes (SASS)[/]", "ptx": "[yellow]via PTX JIT[/]"}.get(how or "", "[red]no[/]"))
                )
    if missing:
        report.err.print("[red]missing:[/] " + "; ".join(missing))
        return EXIT_FAILED
    return EXIT_OK


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
        _render_doctor(host, archs, verdicts, canary, can_build)
    return EXIT_OK if can_build else EXIT_FAILED


def _render_doctor(host, archs, verdicts, canary, can_build) -> None:  # type: ignore[no-untyped-def]
    from envbuilder import report

    report.kv_table(
        "host",
        [
            ("machine", f"{host.machine}, glibc {host.glibc or '?'}"),
            ("cpu / memory", f"{host.cpu_count} cores, {host.memory_gib:.0f} GiB"),
            (
                "gpus",
                "; ".join(f"{g.name} (cc {g.compute_capability}, driver {g.driver})" for g in host.gpus)
                or (host.gpu_note or "none"),
            ),
            ("compilers", ", ".join(f"{c.name} {c.version}" for c in host.compilers) or "none"),
            ("pythons", ", ".join(sorted({str(i.version) for i in host.interpreters})) or "none"),
            ("tools", ", ".join(f"{k}" for k in host.tools) or "none"),
        ],
    )
    report.table(
        f"CUDA toolkits for {', '.join(str(a) for a in archs)}",
        ["version", "root", "found by", "can build", "why not"],
        [
            [
                v["toolkit"]["version"],
                v["toolkit"]["root"],
                v["toolkit"]["found_by"],
                "[green]yes[/]" if v["ok"] else "[red]no[/]",
                "; ".join(v["problems"]),
            ]
            for v in verdicts
        ]
        or [["-", "-", "-", "[red]no[/]", "no CUDA toolkit found (install CUDA >= 12.8 or set CUDA_HOME)"]],
    )
    if canary:
        if canary.get("skipped"):
            report.out.print(f"canary: skipped ({canary['skipped']})")
        elif canary.get("error"):
            report.out.print(f"canary: [red]compile failed[/]: {canary['error']}")
        else:
            report.out.print(
                f"canary: compiled in {canary['compile_seconds']} s with CUDA {canary['nvcc']}: SASS {' '.join(canary['sass'])}; PTX {' '.join(canary['ptx']) or '-'}"
            )
            run = canary["run"]
            if run.get("skipped"):
                report.out.print(f"canary run: skipped ({run['skipped']})")
            else:
                report.out.print(f"canary run: {'[green]ok[/]' if run.get('ok') else '[red]failed[/]'} {run}")
    archs_text = ", ".join(str(a) for a in archs)
    report.out.print(
        f"[bold]{'[green]can build' if can_build else '[red]cannot build'}[/] for {archs_text} on this host"
    )


def cmd_diagnose(args: argparse.Namespace) -> int:
    from envbuilder import diagnose, report

    findings = diagnose.scan_file(args.log)
    if args.json:
        report.print_json([f.to_json() for f in findings])
    elif not findings:
        report.out.print("no known error signature found")
    else:
        for f in findings:
            report.out.print(f"[bold]{f.signature.id}[/] (line {f.line_number}): [dim]{f.line.strip()[:160]}[/]")
            report.out.print(
                f"  cause: {f.cause}\n  fix:   {f.fix}"
                + (f"\n  run:   {f.signature.command}" if f.signature.command else "")
            )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EnvbuilderError as exc:
        from envbuilder import report

        if args.debug:
            import traceback

            traceback.print_exc()
        if getattr(args, "json", False):
            report.print_json({"ok": False, **exc.to_json()})
        report.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("envbuilder: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
