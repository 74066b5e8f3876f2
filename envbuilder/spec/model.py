"""Typed, frozen model of recipes and extension specs. Built once by the loader, then only read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from envbuilder.spec.conditions import Condition


@dataclass(frozen=True, kw_only=True)
class GitSource:
    url: str
    commit: str  # full 40-hex hash
    submodules: bool = True
    branch: str | None = None  # informational: a branch that holds the commit
    note: str | None = None  # e.g. what to do when a mirror lacks the commit

    def to_json(self) -> dict[str, object]:
        return {"git": self.url, "commit": self.commit, "submodules": self.submodules, "branch": self.branch}


@dataclass(frozen=True, kw_only=True)
class PathSource:
    path: Path  # absolute; relative paths in YAML are relative to the recipe file

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path)}


Source = GitSource | PathSource


@dataclass(frozen=True, kw_only=True)
class TorchVariant:
    """The torch stack for one CUDA build, e.g. tag cu130 -> CUDA 13.0."""

    tag: str
    cuda: Version
    packages: tuple[tuple[str, str], ...]  # (name, specifier) for torch, torchvision, torchaudio
    index: str | None = None  # None: the default index (PyPI)

    def requirements(self) -> list[str]:
        return [f"{name}{spec}" for name, spec in self.packages]

    @property
    def torch_spec(self) -> SpecifierSet:
        return SpecifierSet(dict(self.packages)["torch"])

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "cuda": str(self.cuda), "requirements": self.requirements(), "index": self.index}


@dataclass(frozen=True, kw_only=True)
class Requirement:
    text: str  # PEP 508
    when: Condition | None = None
    why: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExtensionSpec:
    """extensions/<name>/extension.yaml: a CUDA extension reused across methods."""

    name: str
    file: Path
    sha256: str  # of the YAML file: part of the build's identity
    summary: str
    import_name: str  # module that must import after the build
    build_requires: tuple[str, ...] = ("setuptools", "wheel", "ninja")
    probe: str | None = None  # envbuilder/probes/<probe>.py, run in the env
    patches: tuple[str, ...] = ()  # names of patches/<name>.yaml (patch engine: later)
    license: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExtensionUse:
    """A recipe's use of an extension: which spec, where its setup.py sits in the source tree."""

    spec: ExtensionSpec
    path: str  # relative to the source root
    when: Condition | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    file: Path
    sha256: str
    summary: str
    source: Source
    python: SpecifierSet
    torch: tuple[TorchVariant, ...]
    requirements: tuple[Requirement, ...] = ()
    extensions: tuple[ExtensionUse, ...] = ()
    patches: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    license: str | None = None
    envbuilder: SpecifierSet | None = None

    def torch_variant(self, tag: str) -> TorchVariant | None:
        return next((v for v in self.torch if v.tag == tag), None)
