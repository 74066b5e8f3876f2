"""The part of a lock that needs the sources (`envbuilder lock RECIPE`, nothing compiled): the
commits actually checked out (every submodule at its gitlink, fallbacks marked), and each
extension's content key, computed from the patched tree, the extension's file, the locked torch
and this host's toolchain, as the extensions step computes it before a compile.

The toolchain, sources and patches steps run for real into a scratch prefix (clones come from
envbuilder's git cache or --mirror); torch is not installed: its version, CUDA and C++ standard
are read from the locked torch wheel itself (torch/version.py, ATen/ATen.h inside the zip)."""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuilder.context import Layout, StepContext, child_env
from envbuilder.errors import EnvbuilderError
from envbuilder.lock.download import DownloadCache
from envbuilder.lock.model import Lock

if TYPE_CHECKING:
    from envbuilder.plan import Plan


@dataclass(frozen=True)
class SourceFacts:
    sources: dict[str, Any]  # the sources step's outputs (root paths are gone with the scratch prefix)
    extension_keys: dict[str, str]  # name -> content key
    toolchain: dict[str, Any]  # the toolchain step's outputs the keys were computed with


def source_facts(plan: Plan, lock: Lock, *, on_note: Callable[[str], None] | None = None) -> SourceFacts:
    from envbuilder import cache
    from envbuilder.steps import Deps, extensions, patches, sources, toolchain
    from envbuilder.steps.sources import extension_dir

    with tempfile.TemporaryDirectory(prefix="envbuilder-lock-sources-") as tmp:
        layout = Layout(Path(tmp), plan.recipe.name)
        layout.logs.mkdir(parents=True)
        ctx = StepContext(layout=layout, log=layout.logs / "lock.log", on_note=on_note)
        tools = dict(toolchain.run(ctx, plan.step("toolchain").given, Deps("toolchain", {}, {})))
        tree = dict(sources.run(ctx, plan.step("sources").given, Deps("sources", {}, {})))
        torch = torch_facts(lock, Path(tmp) / "torch")
        venv = {"version": str(plan.interpreter.version)}
        deps: dict[str, dict[str, Any]] = {
            "toolchain": tools,
            "sources": tree,
            "venv": venv,
            "wheels": {"torch": torch},
        }
        patches.run(ctx, plan.step("patches").given, Deps("patches", deps, {}))
        given: extensions.Inputs = plan.step("extensions").given
        cuda_bin = Path(given.build_env["CUDA_HOME"]) / "bin"
        env = child_env(layout.venv, given.build_env, path_first=[cuda_bin])
        keys = {}
        for b in given.extensions:
            source = extension_dir(tree, b.name, b.path)
            data = extensions.content_key_inputs(
                b, source, {**env, **dict(b.extension.build_env)}, given.build_env, tools, torch, layout.prefix
            )
            keys[b.name] = cache.wheel_key(data)
    return SourceFacts(_without_roots(tree), keys, tools)


def torch_facts(lock: Lock, scratch: Path) -> dict[str, Any]:
    """torch's version and CUDA as `import torch` would report them, and its C++ standard
    (ATen/ATen.h under scratch/include), read from the locked torch wheel."""
    package = lock.package("torch")
    if package is None:
        raise EnvbuilderError("the lock has no torch: extension keys need the torch they build against")
    a = package.artifact
    wheel = DownloadCache().verified(
        a.url, Path(a.path) if a.path else None, a.sha256, a.size, package="torch", filename=a.filename
    )
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        text = zf.read("torch/version.py").decode() if "torch/version.py" in names else ""
        header = zf.read("torch/include/ATen/ATen.h") if "torch/include/ATen/ATen.h" in names else b""
    (scratch / "include" / "ATen").mkdir(parents=True)
    (scratch / "include" / "ATen" / "ATen.h").write_bytes(header)
    version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
    expected = lock.envbuilder.torch if lock.envbuilder else None
    return {
        "version": version.group(1) if version else package.version,
        "cuda": cuda.group(1) if cuda else (expected.cuda if expected else None),
        "file": str(scratch / "__init__.py"),
    }


def _without_roots(tree: dict[str, Any]) -> dict[str, Any]:
    """The scratch prefix is gone once the lock is written: drop its paths."""
    out = {k: v for k, v in tree.items() if k != "root"}
    out["extensions"] = {n: {k: v for k, v in t.items() if k != "root"} for n, t in tree.get("extensions", {}).items()}
    return out


def with_source_facts(lock: Lock, facts: SourceFacts) -> Lock:
    """The lock with what the sources said: commits as checked out, extension keys, and the exact
    toolchain those keys were computed with."""
    from dataclasses import replace

    from envbuilder.lock.model import EnvbuilderPart, ExtensionRef, Source, Toolchain

    part = lock.envbuilder or EnvbuilderPart()
    tools = facts.toolchain
    toolchain = replace(
        part.toolchain or Toolchain(),
        nvcc=tools.get("nvcc"),
        gcc=tools.get("gcc"),
        abi=(tools.get("python") or {}).get("abi"),
    )
    own = {name: Source.from_outputs(tree) for name, tree in (facts.sources.get("extensions") or {}).items()}
    refs = tuple(ExtensionRef(n, k) for n, k in sorted(facts.extension_keys.items()))
    part = replace(
        part, source=Source.from_outputs(facts.sources), extension_sources=own, extensions=refs, toolchain=toolchain
    )
    return replace(lock, envbuilder=part)


__all__ = ["SourceFacts", "source_facts", "torch_facts", "with_source_facts"]
