"""manifest: envbuilder.manifest.json, written last and atomically. Its presence means the env is
complete; it records what was built, from what, and how (the lock, pylock.<recipe>.toml, is
made from it and from the plan: see envbuilder/lock/)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from envbuilder import __version__
from envbuilder.context import Data, Layout, StepContext
from envbuilder.fsutil import write_json
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

if TYPE_CHECKING:
    from envbuilder.assets import Registry

NAME = "manifest"
DEPENDS: tuple[str, ...] = (
    "toolchain",
    "sources",
    "venv",
    "wheels",
    "patches",
    "extensions",
    "verify",
    "assets",
    "smoke",
)
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    recipe_sha256: str
    recipe_file: str
    archs: tuple[str, ...]

    def key(self) -> Data:
        return {
            "recipe_sha256": self.recipe_sha256,
            "recipe_file": self.recipe_file,
            "archs": list(self.archs),
            "envbuilder": __version__,
        }


class Outputs(TypedDict):
    path: str


def inputs(r: Resolved) -> tuple[str, Inputs]:
    layout = Layout(r.prefix, r.recipe.name)
    summary = f"write {layout.manifest}"
    return summary, Inputs(r.recipe.sha256, str(r.recipe.file), tuple(str(a) for a in r.archs))


def build_manifest(ctx: StepContext, inputs: Inputs, deps: Deps) -> Data:
    extensions = deps["extensions"]
    return {
        "envbuilder": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "recipe": {"name": ctx.layout.recipe, "file": inputs.recipe_file, "sha256": inputs.recipe_sha256},
        "prefix": str(ctx.layout.prefix),
        "archs": list(inputs.archs),
        "torch_cuda_arch_list": extensions["build_env"]["TORCH_CUDA_ARCH_LIST"],
        "toolchain": deps["toolchain"],
        "build_env": extensions["build_env"],
        "source": deps["sources"],
        "venv": deps["venv"],
        "torch": deps["wheels"]["torch"],
        "packages": deps["wheels"]["packages"],
        "extensions": extensions["extensions"],
        "patches": deps["patches"]["patches"],
        "cxx_standard": deps["patches"]["cxx_standard"],
        "verify": deps["verify"],
        "assets": deps["assets"]["assets"],
        "smoke": deps["smoke"],
        "steps": {**deps.step_keys, NAME: ctx.key},
    }


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    target = ctx.layout.manifest
    write_json(target, build_manifest(ctx, inputs, deps))
    ctx.layout.legacy_manifest.unlink(missing_ok=True)  # one record per env
    ctx.note(f"wrote {target}")
    return Outputs(path=str(target))


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return layout.manifest.is_file()


def record_assets(layout: Layout, registry: Registry) -> bool:
    """After `assets install/fetch`: the env's manifest lists its assets (sha256 and how far each
    is trusted). False when there is no finished env to record them in."""
    manifest = layout.existing_manifest()
    if manifest is None:
        return False
    data = read(manifest)
    data["assets_installed"] = registry.installed
    data["assets_stubs"] = registry.stubs
    write_json(manifest, data)
    return True


def read(path: Path) -> Data:
    data: Data = json.loads(path.read_text())
    return data
