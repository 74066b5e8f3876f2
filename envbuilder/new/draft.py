"""The draft recipe `new` writes: what it found and why, before it becomes YAML. Every entry
carries the reason it is there (`why`, a comment in the file) so that a reader can check the
guess; `todos` is what could not be decided."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PatchDraft:
    name: str
    files: list[str] | None  # None: the patch's own file list
    why: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExtensionDraft:
    name: str  # the name the recipe uses
    path: str | None  # in the method's tree, or inside the extension's own checkout
    why: str  # where it was found and how it was identified
    shared: bool  # a shipped extension (extensions/<name>/ of envbuilder)
    import_name: str | None = None
    summary: str | None = None
    patches: list[PatchDraft] = field(default_factory=list)  # a new extension's own patches
    source: dict[str, str] | None = None  # a new extension with its own repository: git, commit, branch
    build_requires: list[str] = field(default_factory=list)
    license: str | None = None
    enabled: bool = True  # False: found, but nothing installs or imports it (written commented out)
    fingerprint: dict[str, list[str]] = field(default_factory=dict)  # passed / failed checks
    notes: list[str] = field(default_factory=list)

    @property
    def new(self) -> bool:
        return not self.shared

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["new"] = self.new
        return data


@dataclass
class RequirementDraft:
    text: str
    why: str | None = None
    origin: str | None = None  # file:line it came from ("found by import" …)
    no_build_isolation: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AssetDraft:
    name: str
    path: str
    kind: str
    source: str
    register: str
    license: str
    why: str
    certain: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Draft:
    name: str
    summary: str
    license: str | None
    source: dict[str, Any]  # git/commit/branch, or path
    python: str
    python_why: str
    torch_packages: list[str]  # torch, torchvision, torchaudio: which the table names
    requirements: list[RequirementDraft] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (requirement, why it is not written)
    patches: list[PatchDraft] = field(default_factory=list)
    extensions: list[ExtensionDraft] = field(default_factory=list)
    jit: list[dict[str, Any]] = field(default_factory=list)  # JIT-only backends
    assets: list[AssetDraft] = field(default_factory=list)
    todos: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    submodules: list[dict[str, Any]] = field(default_factory=list)
    files_read: int = 0

    def todo(self, text: str) -> None:
        if text not in self.todos:
            self.todos.append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "license": self.license,
            "source": self.source,
            "python": self.python,
            "python_why": self.python_why,
            "torch_packages": self.torch_packages,
            "requirements": [r.to_json() for r in self.requirements],
            "dropped": [{"requirement": r, "why": w} for r, w in self.dropped],
            "patches": [p.to_json() for p in self.patches],
            "extensions": [e.to_json() for e in self.extensions],
            "jit": self.jit,
            "assets": [a.to_json() for a in self.assets],
            "submodules": self.submodules,
            "todos": self.todos,
            "notes": self.notes,
            "files_read": self.files_read,
        }
