"""smoke: the method's shortest training and render in the new env (envbuilder/smoke.py).

Skipped without a GPU or with --no-smoke; a run blocked on gated assets, or one that only ran on
stand-ins, is recorded with the verdict "blocked" (build exits 3); a failed one fails the build,
so no manifest calls an env ready that cannot train."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from envbuilder import __version__, datasets
from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import SmokeFailed, Verdict
from envbuilder.recipe.model import Recipe
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

NAME = "smoke"
DEPENDS: tuple[str, ...] = ("verify", "assets")
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoSmoke:
    """The recipe has no smoke section."""

    def key(self) -> Data:
        return {"enabled": False}


@dataclass(frozen=True)
class SmokeRun:
    recipe: Recipe  # its smoke section and assets; in the key by its content hash
    enabled: bool  # not --no-smoke
    stub_assets: bool
    gpus: tuple[str, ...]

    def key(self) -> Data:
        return {
            "enabled": self.enabled,
            "stub_assets": self.stub_assets,
            "gpus": list(self.gpus),
            "recipe_sha256": self.recipe.sha256,
            "envbuilder": __version__,  # the data generators and checks live in envbuilder
        }

    @property
    def skipped(self) -> str | None:
        """Why the smoke run does not happen in this build (None: it runs). Decided only here."""
        assert self.recipe.smoke is not None
        if why := datasets.not_written_yet(self.recipe.smoke.data):
            return why
        return NO_SMOKE if not self.enabled else NO_GPU if not self.gpus else None


NO_SMOKE, NO_GPU = "--no-smoke", "no GPU on this machine"


Inputs = NoSmoke | SmokeRun


class Outputs(TypedDict, total=False):
    skipped: str
    verdict: Verdict
    # a run: what SmokeResult.to_json() records (recipe, ok, stub_driven, stubs, data, steps …)
    steps: list[dict[str, Any]]
    stub_driven: bool


def inputs(r: Resolved) -> tuple[str, Inputs]:
    recipe = r.recipe
    if recipe.smoke is None:
        return "no smoke run in this recipe", NoSmoke()
    run = SmokeRun(recipe, r.options.smoke, r.options.stub_assets, r.gpus)
    what = " + ".join(s.name for s in recipe.smoke.steps)
    if run.skipped:
        summaries = {
            NO_SMOKE: f"skipped (--no-smoke): {what}",
            NO_GPU: f"no GPU here: {what} waits for `envbuilder smoke` on a GPU machine",
        }
        return summaries.get(run.skipped, f"not possible yet ({what}): {run.skipped}"), run
    return f"{what} on {r.gpus[0]}" + (" (stand-ins for missing assets)" if r.options.stub_assets else ""), run


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder import smoke

    if isinstance(inputs, NoSmoke):
        return Outputs(skipped="the recipe has no smoke run", verdict="ok")
    recipe = inputs.recipe
    if inputs.skipped:
        notes = {
            NO_SMOKE: f"smoke run skipped (--no-smoke); run it later with `envbuilder smoke {recipe.name}`",
            NO_GPU: "no GPU on this machine: the smoke run waits for one (`envbuilder smoke` on the GPU machine)",
        }
        ctx.note(notes.get(inputs.skipped, f"smoke run not possible yet: {inputs.skipped}"))
        return Outputs(skipped=inputs.skipped, verdict="ok")
    result = smoke.run(recipe, ctx.layout.prefix, stub_assets=inputs.stub_assets, note=ctx.note, on_line=ctx.on_line)
    if result.verdict == "failed":
        failed = next(s for s in result.steps if s.status == "failed")
        raise SmokeFailed(
            f"smoke step {failed.name} failed: {failed.detail}",
            log=Path(failed.log) if failed.log else None,
            hint=f"its log: {failed.log}; fix and re-run `envbuilder smoke {recipe.name}`",
        )
    outputs: Outputs = {**result.to_json(), "verdict": result.verdict}  # type: ignore[typeddict-item]
    return outputs


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return True
