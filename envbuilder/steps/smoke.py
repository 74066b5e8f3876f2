"""smoke: the method's shortest training and render in the new env (envbuilder/smoke.py).

Skipped without a GPU or with --no-smoke; a run blocked on gated assets is recorded (build exits
3), a failed one fails the build, so no manifest calls an env ready that cannot train."""

from __future__ import annotations

from envbuilder import datasets, smoke
from envbuilder.context import Context, Data
from envbuilder.errors import EXIT_BLOCKED_ON_ASSETS, EXIT_FAILED, EXIT_OK, EnvbuilderError


class SmokeFailed(EnvbuilderError):
    pass


def run(ctx: Context, inputs: Data) -> Data:
    recipe = ctx.plan.recipe
    if recipe.smoke is None:
        return {"skipped": "the recipe has no smoke run", "exit_code": EXIT_OK}
    if why := datasets.not_written_yet(recipe.smoke.data):
        ctx.note(f"smoke run not possible yet: {why}")
        return {"skipped": why, "exit_code": EXIT_OK}
    if not inputs["enabled"]:
        ctx.note(f"smoke run skipped (--no-smoke); run it later with `envbuilder smoke {recipe.name}`")
        return {"skipped": "--no-smoke", "exit_code": EXIT_OK}
    if not inputs["gpus"]:
        ctx.note("no GPU on this machine: the smoke run waits for one (`envbuilder smoke` on the GPU machine)")
        return {"skipped": "no GPU on this machine", "exit_code": EXIT_OK}
    result = smoke.run(recipe, ctx.layout.prefix, stub_assets=inputs["stub_assets"], note=ctx.note, on_line=ctx.on_line)
    if result.exit_code == EXIT_FAILED:
        failed = next(s for s in result.steps if s.status == "failed")
        raise SmokeFailed(
            f"smoke step {failed.name} failed: {failed.detail}",
            hint=f"its log: {failed.log}; fix and re-run `envbuilder smoke {recipe.name}`",
        )
    return {**result.to_json(), "exit_code": EXIT_BLOCKED_ON_ASSETS if result.exit_code else EXIT_OK}
