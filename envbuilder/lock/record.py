"""envbuilder's part of a lock ([tool.envbuilder]) from what the build knows: the plan (recipe,
toolchain, archs, torch variant, planned patches) and, when they ran, the step outputs (the
commits actually checked out, fallbacks included; the extension keys). `lock RECIPE` fills it
from the plan and the sources/patches steps (no compile); `--from-env` from the manifest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from envbuilder import __version__
from envbuilder.lock.model import EnvbuilderPart, ExtensionRef, Lock, PatchRef, Source, Toolchain, TorchExpectation

if TYPE_CHECKING:
    from envbuilder.plan import Plan


def part_from_plan(
    plan: Plan,
    *,
    sources: Mapping[str, Any] | None = None,
    extension_keys: Mapping[str, str] | None = None,
) -> EnvbuilderPart:
    """`sources`: the sources step's outputs (with `submodules` as checked out); without them the
    planned commit is recorded and submodules are left out. `extension_keys`: name -> content key
    (cache.wheel_key of the extension step's key inputs), computed before anything compiles."""
    recipe = plan.recipe
    planned = plan.step("sources").inputs  # the key data: {git, commit, ...} or {path, digest}; extensions
    if sources is not None:
        source = Source.from_outputs(sources)
        ext_sources = {k: Source.from_outputs(v) for k, v in (sources.get("extensions") or {}).items()}
    else:
        if planned.get("git"):
            source = Source(git=str(planned["git"]), commit=str(planned["commit"]))
        else:
            source = Source(path=str(planned["path"]), digest=planned.get("digest"))
        ext_sources = {str(name): _planned_repo(repo) for name, repo in (planned.get("extensions") or {}).items()}
    patches = []
    sets: Sequence[Mapping[str, Any]] = plan.step("patches").inputs.get("sets", [])
    for patch_set in sets:
        for p in patch_set["patches"]:
            tree = patch_set.get("tree")
            patches.append(PatchRef(str(patch_set["root"]), str(p["name"]), str(p["sha256"]), tree=tree))
    return EnvbuilderPart(
        envbuilder=__version__,
        recipe=recipe.name,
        variant=plan.torch.tag,
        recipe_sha256=recipe.sha256,
        toolchain=Toolchain(
            cuda=f"{plan.toolkit.version.major}.{plan.toolkit.version.minor}",
            gcc_major=plan.compiler.version.major,
            python=f"{plan.interpreter.version.major}.{plan.interpreter.version.minor}",
        ),
        archs=tuple(str(a) for a in plan.archs),
        torch=TorchExpectation(
            version=str(dict(plan.torch.packages).get("torch", "")),  # the specifier until a lock pins it
            cuda=str(plan.torch.cuda),
            variant=plan.torch.tag,
            index=plan.torch.index,
        ),
        source=source,
        extension_sources=ext_sources,
        patches=tuple(patches),
        extensions=tuple(ExtensionRef(n, k) for n, k in sorted((extension_keys or {}).items())),
    )


def with_locked_torch(part: EnvbuilderPart, lock: Lock, torch_names: Sequence[str]) -> EnvbuilderPart:
    """The torch the lock expects: the exact versions it pins for the torch family."""
    from dataclasses import replace

    torch = lock.package("torch")
    if torch is None:
        return part
    others = {n: p.version for n in torch_names if n != "torch" and (p := lock.package(n)) is not None}
    base = part.torch or TorchExpectation(version=torch.version)
    return replace(part, torch=replace(base, version=torch.version, packages=others, index=torch.index or base.index))


def part_from_manifest(manifest: Mapping[str, Any]) -> EnvbuilderPart:
    """From an env's manifest (envbuilder.manifest.json, written by the manifest step)."""
    recipe = manifest.get("recipe") or {}
    toolchain = manifest.get("toolchain") or {}
    torch = manifest.get("torch") or {}
    source = manifest.get("source") or {}
    patches = [
        PatchRef(str(p.get("root", ".")), str(p["patch"]), str(p.get("sha256", "")))
        for p in manifest.get("patches", [])
        if isinstance(p, Mapping) and p.get("patch") and p.get("sha256")
    ]
    return EnvbuilderPart(
        envbuilder=str(manifest.get("envbuilder") or __version__),
        recipe=recipe.get("name"),
        recipe_sha256=recipe.get("sha256"),
        toolchain=Toolchain(
            cuda=_major_minor(toolchain.get("nvcc")),
            gcc_major=_major(toolchain.get("gcc")),
            python=_major_minor((toolchain.get("python") or {}).get("version")),
            nvcc=toolchain.get("nvcc"),
            gcc=toolchain.get("gcc"),
            abi=(toolchain.get("python") or {}).get("abi"),
        ),
        archs=tuple(str(a) for a in manifest.get("archs", [])),
        torch=TorchExpectation(version=str(torch["version"]), cuda=torch.get("cuda")) if torch.get("version") else None,
        source=Source.from_outputs(source) if source.get("git") or source.get("path") else None,
        extension_sources={k: Source.from_outputs(v) for k, v in (source.get("extensions") or {}).items()},
        patches=tuple(patches),
        extensions=tuple(
            ExtensionRef(str(e["name"]), str(e["cache_key"]))
            for e in manifest.get("extensions", [])
            if isinstance(e, Mapping) and e.get("cache_key")
        ),
    )


def _planned_repo(repo: Any) -> Source:
    """An extension's own repository as the sources step keys it: [url, commit] or {git, commit, ...}."""
    if isinstance(repo, Mapping):
        return Source(git=str(repo["git"]), commit=str(repo["commit"]))
    return Source(git=str(repo[0]), commit=str(repo[1]))


def _major_minor(text: object) -> str | None:
    try:
        v = Version(str(text))
    except InvalidVersion:
        return None
    return f"{v.major}.{v.minor}"


def _major(text: object) -> int | None:
    try:
        return Version(str(text)).major
    except InvalidVersion:
        return None
