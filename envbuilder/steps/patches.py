"""patches: bring the source trees to "pristine + exactly the recipe's patches".

Recipe-level patches apply with the source root as root, each extension's with its directory.
Conditions are decided here, with the torch that was just installed; `cxx-standard: auto` uses
the C++ standard that torch's own headers demand (envbuilder/patching.py does the work).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from packaging.version import Version

from envbuilder.context import Data, Layout, StepContext
from envbuilder.host.compat import parse_arch
from envbuilder.recipe import when
from envbuilder.recipe.model import ExtensionUse, PatchUse, Recipe
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps
from envbuilder.steps.sources import extension_dir

NAME = "patches"
DEPENDS: tuple[str, ...] = ("sources", "wheels")  # conditions and the C++ standard need the installed torch
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()


@dataclass(frozen=True)
class PatchSet:
    root: str  # "." (the method's tree) or an extension's path in its tree
    tree: str | None  # None: the method's tree; else the extension whose own repository holds root
    uses: tuple[PatchUse, ...]

    def key(self) -> Data:
        data: Data = {"root": self.root, "patches": [_use_key(u) for u in self.uses]}
        if self.tree is not None:
            data["tree"] = self.tree
        return data


def _use_key(u: PatchUse) -> Data:
    when = str(u.condition) if u.condition else None
    return {"name": u.name, "sha256": u.patch.sha256, "files": list(u.targets), "when": when}


@dataclass(frozen=True)
class Inputs:
    sets: tuple[PatchSet, ...]
    archs: tuple[str, ...] | None  # only when a condition reads the arch (other facts: the toolchain)

    def key(self) -> Data:
        data: Data = {"sets": [s.key() for s in self.sets]}
        if self.archs is not None:
            data["archs"] = list(self.archs)
        return data


class Outputs(TypedDict):
    patches: list[dict[str, Any]]  # per root: patch, status, files with sha256 before/after
    cxx_standard: str | None


def patch_sets(recipe: Recipe, extensions: Sequence[ExtensionUse]) -> list[PatchSet]:
    """The recipe's own patches (root ".") and each extension's, in the order they apply."""
    sets = [PatchSet(".", None, recipe.patches)]
    sets += [PatchSet(e.path, e.name if e.extension.source else None, e.extension.patches) for e in extensions]
    return sets


def inputs(r: Resolved) -> tuple[str, Inputs]:
    sets = patch_sets(r.recipe, r.extensions)
    by_arch = any(u.condition and "arch" in u.condition.variables() for s in sets for u in s.uses)
    owners = [(r.recipe.name, r.recipe.patches)] + [(e.name, e.extension.patches) for e in r.extensions]
    parts = [f"{owner}: {u.name}{_mark(u, r.facts)}" for owner, uses in owners for u in uses]
    archs = tuple(str(a) for a in r.archs) if by_arch else None
    return "; ".join(parts) or "none", Inputs(tuple(s for s in sets if s.uses), archs)


def _mark(u: PatchUse, facts: when.Facts) -> str:
    decided = u.condition.evaluate(facts) if u.condition else True
    if decided:
        return ""
    return f" (skipped: when {u.condition})" if decided is False else " (decided after torch install)"


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder import patching

    toolchain, venv, torch = deps["toolchain"], deps["venv"], deps["wheels"]["torch"]
    facts = when.facts(
        cuda=Version(toolchain["nvcc"]),
        python=Version(venv["version"]),
        gcc=Version(toolchain["gcc"]),
        torch=Version(torch["version"]),
        archs=[parse_arch(a).version for a in inputs.archs] if inputs.archs is not None else None,
    )
    context = patching.context_for(facts, Path(torch["file"]).parent)
    results = []
    for s in inputs.sets:
        root = extension_dir(deps["sources"], s.tree or "", s.root)
        rel = root.relative_to(ctx.layout.src).as_posix()
        sha256 = {u.name: u.patch.sha256 for u in s.uses}
        for o in patching.apply(root, s.uses, context):
            changed = "".join(f" {c.path}" for c in o.changes)
            ctx.note(f"{rel}: {o.patch}: {o.status}" + (f" ({o.reason})" if o.reason else "") + changed)
            results.append({"root": rel, **o.to_json(), "sha256": sha256[o.patch]})
    if not results:
        ctx.note("no patches in this recipe")
    return Outputs(patches=results, cxx_standard=context.cxx_standard)


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return True
