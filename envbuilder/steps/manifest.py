"""manifest: envbuilder.lock.json, written last and atomically. Its presence means the env is
complete; it records everything needed to rebuild the env or audit it."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile

from envbuilder import __version__
from envbuilder.context import Context, Data


def build_manifest(ctx: Context) -> Data:
    plan, out = ctx.plan, ctx.outputs
    return {
        "envbuilder": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "recipe": {"name": plan.recipe.name, "file": str(plan.recipe.file), "sha256": plan.recipe.sha256},
        "prefix": str(plan.prefix),
        "archs": [str(a) for a in plan.archs],
        "torch_cuda_arch_list": plan.torch_cuda_arch_list,
        "toolchain": out["toolchain"],
        "build_env": plan.build_env,
        "source": out["sources"],
        "venv": out["venv"],
        "torch": out["wheels"]["torch"],
        "packages": out["wheels"]["packages"],
        "extensions": out["extensions"]["extensions"],
        "patches": out["patches"]["patches"],
        "cxx_standard": out["patches"]["cxx_standard"],
        "verify": out["verify"],
        "assets": out["assets"]["assets"],
        "smoke": out.get("smoke", {}),
        "steps": {s.name: s.key for s in plan.steps},
    }


def run(ctx: Context, inputs: Data) -> Data:
    manifest = build_manifest(ctx)
    target = ctx.layout.manifest
    fd, tmp = tempfile.mkstemp(prefix=".envbuilder.lock.", dir=target.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, target)
    ctx.note(f"wrote {target}")
    return {"path": str(target)}
