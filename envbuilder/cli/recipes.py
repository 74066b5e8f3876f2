"""envbuilder list | show RECIPE: the recipes envbuilder knows and what one of them declares."""

from __future__ import annotations

import argparse
from typing import Any

from envbuilder.cli.options import add_json_option, add_recipes_option, catalog
from envbuilder.errors import EXIT_OK, EnvbuilderError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("list", help="recipes and whether they are built here")
    add_json_option(p)
    add_recipes_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one recipe in detail")
    p.add_argument("recipe")
    add_json_option(p)
    add_recipes_option(p)
    p.set_defaults(func=cmd_show)


def cmd_list(args: argparse.Namespace) -> int:
    from envbuilder import report
    from envbuilder.context import Layout

    found = catalog(args)
    rows = []
    for name, (path, origin) in sorted(found.recipe_files().items()):
        layout = Layout.for_recipe(name)
        try:
            summary, error = found.recipe(name).summary, None
        except EnvbuilderError as exc:
            summary, error = "", exc.message
        rows.append(
            {
                "name": name,
                "summary": summary,
                "file": str(path),
                "origin": origin,
                "status": layout.status(),
                "prefix": str(layout.prefix),
                "error": error,
            }
        )
    if args.json:
        report.print_json(rows)
    else:
        report.recipes_list(rows)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from envbuilder import report

    data = describe(catalog(args).recipe(args.recipe))
    if args.json:
        report.print_json(data)
    else:
        report.recipe_show(data)
    return EXIT_OK


def describe(recipe: Any) -> dict[str, Any]:
    """A recipe as data: what `show` prints and `show --json` returns."""
    return {
        "name": recipe.name,
        "summary": recipe.summary,
        "file": str(recipe.file),
        "license": recipe.license,
        "notes": recipe.notes,
        "source": recipe.source.to_json(),
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
            {
                "name": a.name,
                "path": a.path,
                "kind": a.kind,
                "gated": a.gated,
                "source": a.source,
                "register": a.register,
            }
            for a in recipe.assets
        ],
        "smoke": [{"name": st.name, "run": list(st.run), "needs": list(st.needs)} for st in recipe.smoke.steps]
        if recipe.smoke
        else [],
        "env": dict(recipe.env),
    }
