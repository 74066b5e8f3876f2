"""assets: which gated and free assets the method needs are present and valid. Runs on every
build (files come and go outside envbuilder) and never fails the build: a missing model blocks
only the smoke run, and `build` reports it with exit code 3 (a missing licensed file, or one a
smoke step needs; a free data set for real training is only reported)."""

from __future__ import annotations

from pathlib import Path

from envbuilder import assets
from envbuilder.context import Context, Data


def run(ctx: Context, inputs: Data) -> Data:
    root = Path(str(ctx.outputs["sources"]["root"]))
    statuses = assets.check(ctx.plan.recipe, root)
    for s in statuses:
        if s.status != "ok" or s.stub:
            ctx.note(f"{s.asset.name}: {s.status}{' (stand-in)' if s.stub else ''} at {s.path}")
    if statuses:
        ok = sum(1 for s in statuses if s.status == "ok" and not s.stub)
        ctx.note(f"{ok} of {len(statuses)} assets present and valid")
    return {
        "assets": [s.to_json() for s in statuses],
        "blocked": assets.blocked_steps(statuses),
        "exit_code": assets.build_exit_code(statuses),
    }
