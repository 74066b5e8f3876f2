"""wheels: torch from the index that matches the CUDA build, then the recipe's pins and the
extensions' build tools, installed against the already-installed torch so nothing replaces it.
Then torch is checked: a CUDA build, with the CUDA major nvcc has."""

from __future__ import annotations

import json

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from envbuilder import installer
from envbuilder.context import Context, Data
from envbuilder.errors import CompatError
from envbuilder.host import compat

TORCH_FACTS = """
import json, torch
flags = getattr(torch._C, "_cuda_getArchFlags", lambda: "")() or ""
print(json.dumps({"version": torch.__version__, "cuda": torch.version.cuda, "file": torch.__file__,
                  "arch_flags": flags.split()}))
"""


def run(ctx: Context, inputs: Data) -> Data:
    tool = installer.for_context(ctx)
    torch_reqs = unsatisfied(inputs["torch"], tool.packages())
    if torch_reqs:
        ctx.note(f"installing {' '.join(torch_reqs)}")
        tool.install(torch_reqs, index=inputs["index"])
    else:
        ctx.note(f"{' '.join(inputs['torch'])}: already satisfied in the env")
    torch = json.loads(ctx.capture([ctx.layout.python, "-c", TORCH_FACTS]).strip().splitlines()[-1])
    if not torch["cuda"]:
        raise CompatError(
            f"torch {torch['version']} in the env is a CPU-only build: it cannot build CUDA extensions",
            hint="install a CUDA build (the recipe's torch index), or drop --system-site-packages if it came from there",
        )
    problem = compat.torch_cuda_problem(Version(torch["cuda"]), ctx.plan.toolkit.version)
    if problem:
        raise problem
    pins = [f"{name}=={version}" for name, version in _torch_pins(tool.packages())]
    extra = list(inputs["requirements"]) + list(inputs["build_requires"])
    if ctx.plan.installer == "uv":
        extra.append("pip")  # extension wheels are built with the env's own pip
    extra = unsatisfied(extra, tool.packages())
    if extra:
        ctx.note(f"installing {', '.join(extra)}")
        tool.install(extra, constraints=pins)
    # old sdists whose setup.py imports pip or numpy (chumpy): built against the env, not in isolation
    late = unsatisfied(list(inputs.get("no_build_isolation", [])), tool.packages())
    if late:
        ctx.note(f"installing without build isolation: {', '.join(late)}")
        tool.install(late, constraints=pins, options=["--no-build-isolation"])
    packages = tool.packages()
    ctx.note(f"torch {torch['version']} (CUDA {torch['cuda']}), {len(packages)} packages")
    return {"torch": torch, "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower()))}


def unsatisfied(requirements: list[str], installed: dict[str, str]) -> list[str]:
    """The requirements the env does not meet yet. Decided here rather than by the installer:
    uv does not see packages an env inherits through a .pth file (--system-site-packages from a
    venv), and skipping what is met keeps an offline machine offline."""
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
