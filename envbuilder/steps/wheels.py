"""wheels: torch from the index that matches the CUDA build, then the recipe's pins and the
extensions' build tools, installed against the already-installed torch so nothing replaces it.
Then torch is checked: a CUDA build, with the CUDA major nvcc has."""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from packaging.utils import canonicalize_name
from packaging.version import Version

from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import CompatError
from envbuilder.host import compat
from envbuilder.lock.model import EnvbuilderPart, Lock, LockedPackage
from envbuilder.recipe.model import SdistEnv
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

if TYPE_CHECKING:
    from envbuilder.lock.tools import Tools

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
class Locked:
    """build --locked: exactly these files (each with its sha256 and size)."""

    packages: tuple[LockedPackage, ...]
    no_build_isolation: tuple[str, ...]  # sdists the installer builds against the env (chumpy)
    source: str  # the lock file, for messages and relative paths
    provided: tuple[tuple[str, str], ...] = ()  # left out of a bundle's lock: the base must have them
    sdist_env: SdistEnv = ()  # variables an sdist's build needs (pysdf: Eigen's headers)

    def key(self) -> Data:
        data: Data = {
            "packages": [[p.name, p.version, p.index, *astuple(p.artifact)] for p in self.packages],
            "no_build_isolation": list(self.no_build_isolation),
            "source": self.source,
            "provided": [list(p) for p in self.provided],
        }
        data.update(_sdist_env_key(self.sdist_env))
        return data

    def as_lock(self) -> Lock:
        part = EnvbuilderPart(
            no_build_isolation=self.no_build_isolation, sdist_env={n: dict(env) for n, env in self.sdist_env}
        )
        return Lock(self.packages, envbuilder=part)


@dataclass(frozen=True)
class Inputs:
    torch: tuple[str, ...]  # the torch family's requirements
    index: str | None  # the torch index (None: PyPI)
    requirements: tuple[str, ...]
    no_build_isolation: tuple[str, ...]  # old sdists whose setup.py imports pip or numpy (chumpy)
    build_requires: tuple[str, ...]  # what the extensions' builds import
    cuda_major: int
    lock: Locked | None = None  # --locked: these files, not a resolution
    sdist_env: SdistEnv = ()  # the recipe's sdist_env: variables an sdist's build needs

    def key(self) -> Data:
        data: Data = {
            "torch": list(self.torch),
            "index": self.index,
            "requirements": list(self.requirements),
            "no_build_isolation": list(self.no_build_isolation),
            "build_requires": list(self.build_requires),
            "cuda_major": self.cuda_major,
        }
        data.update(_sdist_env_key(self.sdist_env))
        if self.lock is not None:
            data["lock"] = self.lock.key()
        return data


class Torch(TypedDict):
    version: str
    cuda: str | None
    file: str
    arch_flags: list[str]


class Outputs(TypedDict):
    torch: Torch
    packages: dict[str, str]  # name -> version of everything the env can import
    installed: str | None  # the env's record of the files it was given (pylock.installed.toml)


def _sdist_env_key(sdist_env: SdistEnv) -> Data:
    # only when set, so that the keys of envs without one stay as they were
    return {"sdist_env": [[name, [list(v) for v in env]] for name, env in sdist_env]} if sdist_env else {}


def inputs(r: Resolved) -> tuple[str, Inputs]:
    build_requires = tuple(sorted({b for e in r.extensions for b in e.extension.build_requires}))
    locked = _locked(r)
    if locked is not None:
        summary = f"{len(locked.packages)} locked wheels from {locked.source} ({r.torch.tag}), every file checked"
    else:
        summary = (
            f"{' '.join(r.torch_requirements)} ({r.torch.tag}, {r.torch.index or 'PyPI'})"
            + (f" + {len(r.requirements)} requirements" if r.requirements else "")
            + (f" + build tools {', '.join(build_requires)}" if build_requires else "")
        )
    given = Inputs(
        r.torch_requirements,
        r.torch.index,
        r.requirements,
        r.no_build_isolation,
        build_requires,
        r.toolkit.version.major,
        sdist_env=r.sdist_env,
    )
    return summary, replace(given, lock=locked) if locked else given


def _locked(r: Resolved) -> Locked | None:
    lock = r.options.lock
    if lock is None:
        return None
    base = r.options.lock_file.parent if r.options.lock_file else None
    packages = tuple(
        replace(p, artifact=replace(p.artifact, path=str(base / p.artifact.path)))
        if base is not None and p.artifact.path and not Path(p.artifact.path).is_absolute()
        else p
        for p in lock.packages
    )
    part = lock.envbuilder
    provided = tuple(sorted(part.provided.items())) if part else ()
    sdist_env = tuple((n, tuple(sorted(env.items()))) for n, env in sorted(part.sdist_env.items())) if part else ()
    return Locked(
        packages,
        part.no_build_isolation if part else (),
        str(r.options.lock_file or "the lock"),
        provided,
        sdist_env,
    )


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder import installer
    from envbuilder.bundle.check import base_problem
    from envbuilder.lock.freeze import record_installed
    from envbuilder.lock.install import install_lock
    from envbuilder.lock.tools import ensure_tools

    venv = deps["venv"]
    have = installer.for_env(venv["installer"], ctx).packages()
    if inputs.lock and inputs.lock.provided:
        problem = base_problem(dict(inputs.lock.provided), have)
        if problem:
            hint = "build on the base the bundle was made for (with --system-site-packages), or bundle a lock for this base"
            raise CompatError(problem, hint=hint)
    tools = ensure_tools()
    lock = inputs.lock.as_lock() if inputs.lock else _resolve(ctx, inputs, venv, have, tools)
    todo = lock.without(already_there(lock, have))
    if len(todo.packages) < len(lock.packages):
        ctx.note(f"{len(lock.packages) - len(todo.packages)} locked packages are in the env already (exact versions)")
    if todo.packages:
        install_lock(todo, ctx.layout.python, installer=venv["installer"], tools=tools, log=ctx.log, on_note=ctx.note)
    record = record_installed(lock, ctx.layout.prefix)
    torch: Torch = json.loads(ctx.capture([ctx.layout.python, "-c", TORCH_FACTS]).strip().splitlines()[-1])
    check_torch(torch, Version(deps["toolchain"]["nvcc"]))
    packages = installer.for_env(venv["installer"], ctx).packages()
    ctx.note(f"torch {torch['version']} (CUDA {torch['cuda']}), {len(packages)} packages")
    return Outputs(
        torch=torch, packages=dict(sorted(packages.items(), key=lambda kv: kv[0].lower())), installed=str(record)
    )


def _resolve(ctx: StepContext, inputs: Inputs, venv: Data, have: dict[str, str], tools: Tools) -> Lock:
    """No lock given: resolve one now, the way `envbuilder lock` does, so that pip and uv envs get
    the same packages and the env records every file it was given. What the env already holds
    (a torch from --system-site-packages) is kept: the torch family is pinned to it."""
    import os

    from envbuilder.lock.indexes import from_pip_config
    from envbuilder.lock.resolve import Request, resolve
    from envbuilder.lock.target import Target, default_platform

    version = Version(venv["version"])
    request = Request.from_wheels_inputs(inputs.key(), Target(f"{version.major}.{version.minor}", default_platform()))
    if not unsatisfied(request.all_requirements(), have):
        ctx.note("everything the recipe needs is in the env already: nothing to resolve")
        return Lock(())
    request = replace(request, torch=tuple(_pinned_if_present(r, have) for r in request.torch))
    return resolve(request, tools=tools, indexes=from_pip_config(tools.pip, env=dict(os.environ)), on_note=ctx.note)


def _pinned_if_present(requirement: str, have: dict[str, str]) -> str:
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    versions: dict[str, str] = {canonicalize_name(n): v for n, v in have.items()}
    found = versions.get(canonicalize_name(req.name))
    if found and req.specifier.contains(found, prereleases=True):
        return f"{req.name}=={found}"
    return requirement


def already_there(lock: Lock, have: dict[str, str]) -> list[str]:
    """Locked packages the env already holds at exactly the locked version (a base's torch seen
    through --system-site-packages): installing them again would only shadow the same files."""
    found: dict[str, str] = {canonicalize_name(n): v for n, v in have.items()}
    return [p.name for p in lock.packages if found.get(p.name) == p.version]


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
