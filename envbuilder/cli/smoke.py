"""envbuilder smoke RECIPE: the method's smoke training and render in its built env, on this GPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from envbuilder.cli.options import add_json_option, add_recipes_option, catalog
from envbuilder.errors import InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "smoke",
        help="run a built env's smoke training and render on this machine's GPU, with checks",
        description="Exit 0: every step ran and passed its checks; 1: a step failed; "
        "3: blocked on gated assets, or only stand-ins made it run.",
    )
    p.add_argument("recipe")
    p.add_argument("--prefix", type=Path, help="the env (default: $ENVBUILDER_HOME/envs/<recipe>)")
    p.add_argument("--stub-assets", action="store_true", help="write stand-ins for missing gated models first")
    add_json_option(p)
    add_recipes_option(p)
    p.set_defaults(func=cmd_smoke)


def cmd_smoke(args: argparse.Namespace) -> int:
    from envbuilder import diagnose, report, smoke
    from envbuilder.context import Layout
    from envbuilder.host.gpu import find_gpus

    recipe = catalog(args).recipe(args.recipe)
    layout = Layout.for_recipe(recipe.name, args.prefix)
    if not layout.is_ready():
        raise InputError(
            f"no finished env at {layout.prefix} (no {layout.manifest.name})",
            hint=f"build it first: envbuilder build {recipe.name}"
            + (f" --prefix {args.prefix}" if args.prefix else ""),
        )
    gpus, why_none = find_gpus()
    if not gpus:
        raise InputError(
            f"no GPU to run the smoke training on: {why_none}",
            hint="run `envbuilder smoke` on the machine with the GPU; `build` already ran the checks that need no GPU",
        )
    note = None if args.json else (lambda text: report.err.print(f"  {text}"))
    result = smoke.run(recipe, layout.prefix, stub_assets=args.stub_assets, note=note)
    found = {s.name: diagnose.scan_file(Path(s.log)) for s in result.steps if s.status == "failed" and s.log}
    if args.json:
        data = result.to_json()
        for step in data["steps"]:
            if step["name"] in found:
                step["diagnoses"] = [f.to_json() for f in found[step["name"]]]
        report.print_json({**data, "exit_code": result.exit_code})
    else:
        report.smoke_run(result.to_json())
        for findings in found.values():
            report.diagnoses(findings, report.err, limit=3, quiet_if_none=True)
    return result.exit_code
