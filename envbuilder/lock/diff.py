"""What changed between two locks, one line per change, for `lock --check` and for review:

    pkg: 1.0 -> 1.1
    pkg: 1.0 -> 1.0 (file changed: sha256 4a5b6c7d8e9f -> 0a1b2c3d4e5f)
    newdep: added 2.0
    olddep: removed 0.3
    [envbuilder] source.commit: 1a2b3c4d5e6f -> 6f5e4d3c2b1a

Packages compare by version and by the bytes of their file (sha256); where a file came from
(url, index) is not a change. envbuilder's part compares everything that shapes the build
(recipe, sources, patches, toolchain, archs, torch, extension keys), not how it was resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envbuilder.lock.model import Lock

IGNORED_PART_KEYS = {"resolution", "envbuilder", "schema"}


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # changed | added | removed | rehashed | envbuilder
    old: str | None = None
    new: str | None = None

    def line(self) -> str:
        if self.kind == "added":
            return f"{self.name}: added {self.new}"
        if self.kind == "removed":
            return f"{self.name}: removed {self.old}"
        if self.kind == "envbuilder":
            return f"[envbuilder] {self.name}: {self.old} -> {self.new}"
        return f"{self.name}: {self.old} -> {self.new}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "old": self.old, "new": self.new, "line": self.line()}


def diff_locks(old: Lock, new: Lock) -> list[Change]:
    changes: list[Change] = []
    before = {p.name: p for p in old.packages}
    after = {p.name: p for p in new.packages}
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is None and b is not None:
            changes.append(Change(name, "added", new=b.version))
        elif b is None and a is not None:
            changes.append(Change(name, "removed", old=a.version))
        elif a is not None and b is not None:
            if a.version != b.version:
                changes.append(Change(name, "changed", a.version, b.version))
            elif a.artifact.sha256 != b.artifact.sha256 or a.artifact.kind != b.artifact.kind:
                changes.append(
                    Change(
                        name,
                        "rehashed",
                        a.version,
                        f"{b.version} (file changed: sha256 {a.artifact.sha256[:12]} -> {b.artifact.sha256[:12]})",
                    )
                )
    changes += _part_changes(
        old.envbuilder.to_toml() if old.envbuilder else {}, new.envbuilder.to_toml() if new.envbuilder else {}
    )
    return changes


def _part_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    flat_old, flat_new = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(flat_old.keys() | flat_new.keys()):
        if key.split(".", 1)[0].split("[", 1)[0] in IGNORED_PART_KEYS:
            continue
        a, b = flat_old.get(key), flat_new.get(key)
        if a != b:
            changes.append(Change(key, "envbuilder", _short(a), _short(b)))
    return changes


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and any(isinstance(v, dict) for v in data):
        out = {}
        for i, v in enumerate(data):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text[:12] if len(text) in (40, 64) and text.isalnum() else text
