"""CMake projects that build against libtorch: a CMakeLists.txt with find_package(Torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envbuilder.patching import blank_hash_comments

FIND_TORCH_RE = re.compile(r"\bfind_package\s*\(\s*Torch\b", re.IGNORECASE)


@dataclass(frozen=True)
class CMakeProject:
    file: str  # CMakeLists.txt, relative to the root
    directory: str
    line: int
    buildable: bool  # a setup.py or pyproject.toml next to it drives the build (pip can build it)


def find(path: Path, root: Path) -> CMakeProject | None:
    text = blank_hash_comments(path.read_text(encoding="utf-8", errors="replace"))
    m = FIND_TORCH_RE.search(text)
    if not m:
        return None
    rel = path.resolve().relative_to(root.resolve())
    directory = rel.parent.as_posix() or "."
    return CMakeProject(
        file=rel.as_posix(),
        directory=directory,
        line=text.count("\n", 0, m.start()) + 1,
        buildable=(path.parent / "setup.py").is_file() or (path.parent / "pyproject.toml").is_file(),
    )
