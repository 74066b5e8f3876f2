"""wheels: torch from the index that matches the CUDA build, then the recipe's pins and the
extensions' build tools, installed against the already-installed torch so nothing replaces it.
Then torch is checked: a CUDA build, with the CUDA major nvcc has."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypedDict

from packaging.utils import canonicalize_name
from packaging.version import Version

from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import CompatError
from envbuilder.host import compat
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

NAME = "wheels"
DEPENDS: tuple[str, ...] = ("venv",)
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()

TORCH_FACTS = """
import json, torch
flags = getattr(torch._C, "_cuda_getArchFlags", lambda: "")() or ""
print(json.dumps({"version": torch.__version__, "cuda": torch.version.cuda, "file": torch.__file__,
                  "arch_flags": flags.split()}))
"""


@dataclass(frozen=True)
class Inputs:
    torch: tuple[str, ...]  # the torch family's requirements
    index: str | None  # the torch index (None: PyPI)
    requirements: tuple[str, ...]
    no_build_isolation: tuple[str, ...]  # old sdists whose setup.py imports pip or numpy (chumpy)
    build_requires: tuple[str, ...]  # what the extensions' builds import
    cuda_major: int

    def key(self) -> Data:
        return {
            "torch": list(self.torch),
            "index": self.index,
            "requirements": list(self.requirements),
            "no_build_isolation": list(self.no_build_isolation),
            "build_requires": list(self.build_requires),
            "cuda_major": self.cuda_major,
        }


class Torch(TypedDict):
    version: str
    cuda: str | None
    file: str
    arch_flags: list[str]


class Outputs(TypedDict):
    torch: Torch
    packages: dict[str, str]  # name -> version of everything the env can import


def inputs(r: Resolved) -> tuple[str, Inputs]:
    build_requires = tuple(sorted({b for e in r.extensions for b in e.extension.build_requires}))
    summary = (
        f"{' '.join(r.torch_requirements)} ({r.torch.tag}, {r.torch.index or 'PyPI'})"
        + (f" + {len(r.requirements)} requirements" if r.requirements else "")
        + (f" + build tools {', '.join(build_requires)}" if build_requires else "")
    )
    return summary, Inputs(
        r.torch_requirements,
        r.torch.index,
        r.requirements,
        r.no_build_isolation,
        build_requires,
        r.toolkit.version.major,
    )


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder import installer

    venv = deps["venv"]
    tool = installer.for_env(venv["installer"], ctx)
    torch_reqs = unsatisfied(list(inputs.torch), tool.packages())
    if torch_reqs:
        ctx.note(f"installing {' '.join(torch_reqs)}")
        tool.install(torch_reqs, index=inputs.index)
    else:
        ctx.note(f"{' '.join(inputs.torch)}: already satisfied in the env")
    torch: Torch = json.loads(ctx.capture([ctx.layout.python, "-c", TORCH_FACTS]).strip().splitlines()[-1])
    check_torch(torch, Version(deps["toolchain"]["nvcc"]))
    pins = [f"{name}=={version}" for name, version in _torch_pins(tool.packages())]
    extra = [*inputs.requirements, *inputs.build_requires]
    if venv["installer"] == "uv":
        extra.append("pip")  # extension wheels are built with the env's own pip
    extra = unsatisfied(extra, tool.packages())
    if extra:
        ctx.note(f"installing {', '.join(extra)}")
        tool.install(extra, constraints=pins)
    late = unsatisfied(list(inputs.no_build_isolation), tool.packages())
    if late:
        ctx.note(f"installing without build isolation: {', '.join(late)}")
        tool.install(late, constraints=pins, options=["--no-build-isolation"])
    packages = tool.packages()
    ctx.note(f"torch {torch['version']} (CUDA {torch['cuda']}), {len(packages)} packages")
    return Outputs(torch=torch, packages=dict(sorted(packages.items(), key=lambda kv: kv[0].lower())))


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return True


def check_torch(torch: Torch | dict[str, Any], nvcc: Version) -> None:
    if not torch["cuda"]:
        raise CompatError(
            f"torch {torch['version']} in the env is a CPU-only build: it cannot build CUDA extensions",
            hint="install a CUDA build (the recipe's torch index), or drop --system-site-packages if it came from there",
        )
    problem = compat.torch_cuda_problem(Version(torch["cuda"]), nvcc)
    if problem:
        raise problem


def unsatisfied(requirements: list[str], installed: dict[str, str]) -> list[str]:
    """The requirements the env does not meet yet. Decided here rather than by the installer:
    uv does not see packages an env inherits through a .pth file (--system-site-packages from a
    venv), and skipping what is met keeps an offline machine offline."""
    from packaging.requirements import Requirement

    have = {canonicalize_name(name): version for name, version in installed.items()}
    missing = []
    for text in requirements:
        req = Requirement(text)
        if req.marker or req.url or req.extras:
            missing.append(text)  # the installer evaluates these
            continue
        version = have.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def _torch_pins(packages: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (name, version) for name, version in packages.items() if name.lower() in ("torch", "torchvision", "torchaudio")
    ]
