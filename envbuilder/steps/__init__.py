"""One module per build step, run in this order. Each has `run(ctx, inputs) -> outputs`:
inputs come from the plan (their hash is the step's key), outputs are recorded in the env's
state and feed later steps and the manifest."""

from __future__ import annotations

from collections.abc import Callable

from envbuilder.context import Context, Data
from envbuilder.steps import assets, extensions, manifest, patches, smoke, sources, toolchain, venv, verify, wheels

StepFunction = Callable[[Context, Data], Data]

STEPS: dict[str, StepFunction] = {
    "toolchain": toolchain.run,
    "sources": sources.run,
    "venv": venv.run,
    "wheels": wheels.run,
    "patches": patches.run,
    "extensions": extensions.run,
    "verify": verify.run,
    "assets": assets.run,
    "smoke": smoke.run,
    "manifest": manifest.run,
}
