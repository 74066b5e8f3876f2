"""patches: bring the source tree to "pristine + exactly the recipe's patches".

Recipe-level patches apply with the source root as root, each extension's with its directory.
Conditions are decided here, with the torch that was just installed; `cxx-standard: auto` uses
the C++ standard that torch's own headers demand.
"""

from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from envbuilder import patching
from envbuilder.context import Context, Data
from envbuilder.host import compat
from envbuilder.recipe.model import PatchUse
from envbuilder.steps.sources import extension_dir


def patch_sets(ctx: Context) -> list[tuple[Path, tuple[PatchUse, ...]]]:
    sources = ctx.outputs["sources"]
    sets = [(Path(sources["root"]), ctx.plan.recipe.patches)] if ctx.plan.recipe.patches else []
    sets += [(extension_dir(sources, e), e.extension.patches) for e in ctx.plan.extensions if e.extension.patches]
    return sets


def context_for(ctx: Context) -> patching.PatchContext:
    torch = ctx.outputs["wheels"]["torch"]
    version = Version(torch["version"])
    standard = patching.torch_cxx_standard(Path(torch["file"]).parent) or compat.cxx_standard(version)
    facts: dict[str, Version | list[Version] | None] = {
        "cuda": ctx.plan.toolkit.version,
        "gcc": ctx.plan.compiler.version,
        "python": Version(ctx.outputs["venv"]["version"]),
        "torch": version,
        "arch": [a.version for a in ctx.plan.archs],
    }
    return patching.PatchContext(facts=facts, cxx_standard=standard)


def run(ctx: Context, inputs: Data) -> Data:
    context = context_for(ctx)
    results = []
    for root, uses in patch_sets(ctx):
        rel = root.relative_to(ctx.layout.src).as_posix()
        outcomes = patching.apply(root, uses, context)
        for o in outcomes:
            ctx.note(
                f"{rel}: {o.patch}: {o.status}"
                + (f" ({o.reason})" if o.reason else "")
                + "".join(f" {c.path}" for c in o.changes)
            )
            results.append({"root": rel, **o.to_json()})
    if not results:
        ctx.note("no patches in this recipe")
    return {"patches": results, "cxx_standard": context.cxx_standard}
