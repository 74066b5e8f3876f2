"""envbuilder plan | build RECIPE: what a build would do and why, and doing it."""

from __future__ import annotations

import argparse
from pathlib import Path

from envbuilder.cli.options import add_plan_options, make_plan
from envbuilder.errors import EXIT_OK, exit_code_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", help="what `build` would do, and why (nothing is written)")
    add_plan_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("build", help="build the recipe's environment")
    add_plan_options(p)
    p.set_defaults(func=cmd_build)


def cmd_plan(args: argparse.Namespace) -> int:
    from envbuilder import report

    plan, _ = make_plan(args, plan_only=True)
    if args.json:
        report.print_json(plan.to_json())
    else:
        report.plan_text(plan)
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from envbuilder import assets, report
    from envbuilder.execute import execute

    plan, _ = make_plan(args)
    for w in plan.warnings:
        report.warn(w)
    if not args.json:
        report.err.print(f"building [bold]{plan.recipe.name}[/] for {plan.torch_cuda_arch_list} into {plan.prefix}")
    result = execute(plan, report.ProgressReporter())
    checked, smoked = result.outputs.get("assets", {}), result.outputs.get("smoke", {})
    code = exit_code_for([checked.get("verdict", "ok"), smoked.get("verdict", "ok")])
    if args.json:
        report.print_json(
            {
                **result.to_json(),
                "exit_code": code,
                "assets_exit_code": exit_code_for([checked.get("verdict", "ok")]),
                "blocked": checked.get("blocked", {}),
                "smoke": smoked,
            }
        )
        return code
    report.build_done(str(result.prefix), str(result.manifest), smoked)
    if checked.get("verdict", "ok") != "ok":
        root = Path(result.outputs["sources"]["root"])
        statuses = assets.check(plan.recipe, root)
        report.build_blocked(plan.recipe.name, root, statuses, assets.blocked_steps(statuses), code)
    return code
