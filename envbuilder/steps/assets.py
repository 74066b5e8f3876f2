"""assets: which gated and free assets the method needs are present and valid. Runs on every
build (files come and go outside envbuilder) and never fails the build: a missing model blocks
only the smoke run, and `build` reports it (verdict "blocked", exit code 3) when it is licensed
or a smoke step needs it; a free data set for real training is only reported."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypedDict

from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import Verdict
from envbuilder.recipe.model import Asset
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

NAME = "assets"
DEPENDS: tuple[str, ...] = ("sources",)
VOLATILE = True
DISTRUST_AFTER_CUT: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    assets: tuple[Asset, ...]

    def key(self) -> Data:
        return {"assets": [asdict(a) for a in self.assets]}


class Outputs(TypedDict):
    assets: list[dict[str, Any]]  # per asset: status, stub, path, where to get it …
    blocked: dict[str, list[str]]  # smoke step -> the assets it lacks
    verdict: Verdict


def inputs(r: Resolved) -> tuple[str, Inputs]:
    found = r.recipe.assets
    summary = f"check {len(found)} assets ({sum(a.gated for a in found)} gated)" if found else "no assets"
    return summary, Inputs(found)


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder import assets

    statuses = assets.check_assets(inputs.assets, Path(deps["sources"]["root"]), ctx.layout.recipe)
    for s in statuses:
        if s.status != "ok" or s.stub:
            ctx.note(f"{s.asset.name}: {s.status}{' (stand-in)' if s.stub else ''} at {s.path}")
    if statuses:
        ok = sum(1 for s in statuses if s.status == "ok" and not s.stub)
        ctx.note(f"{ok} of {len(statuses)} assets present and valid")
    return Outputs(
        assets=[s.to_json() for s in statuses],
        blocked=assets.blocked_steps(statuses),
        verdict=assets.build_verdict(statuses),
    )


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return True
