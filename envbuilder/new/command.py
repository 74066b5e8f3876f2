"""`envbuilder new URL|PATH`: read the tree, analyse it, write the recipe folder. The CLI calls
`new()` and renders its Result; nothing here prints."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuilder.errors import InputError
from envbuilder.new import write as writer
from envbuilder.new.analyse import NAME_RE, analyse, recipe_name
from envbuilder.new.draft import Draft
from envbuilder.new.index import Index, SimpleIndex
from envbuilder.new.tree import open_tree
from envbuilder.paths import cache_dir


@dataclass
class Result:
    draft: Draft
    output: Path
    files: list[Path]
    seconds: float
    trial: dict[str, Any] | None = field(default=None)

    @property
    def recipe_file(self) -> Path:
        return self.output / "recipes" / f"{self.draft.name}.yaml"

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.draft.name,
            "output": str(self.output),
            "files": [str(f) for f in self.files],
            "recipes_option": f"--recipes {self.output}",
            "seconds": round(self.seconds, 2),
            "draft": self.draft.to_json(),
            "todos": self.draft.todos,
            "try": self.trial,
        }


def scratch_parent() -> str | None:
    """Where the tree is checked out for reading: a memory file system when there is one with
    room (checking out and deleting thousands of files on a busy disk takes longer than the
    whole analysis), else the temp dir."""
    shm = Path("/dev/shm")  # noqa: S108 - only a parent for mkdtemp, which makes a private folder
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 << 30:
            return str(shm)
    except OSError:
        pass
    return None


def default_index() -> Index:
    return SimpleIndex(cache=cache_dir() / "index")


def new(
    target: str,
    *,
    commit: str | None = None,
    name: str | None = None,
    mirror: Path | None = None,
    output: Path | None = None,
    index: Index | None = None,
) -> Result:
    """Write a first recipe for the method at `target` (URL or path). Bad input raises an
    InputError before anything is written."""
    started = time.monotonic()
    if name is not None and not NAME_RE.match(name):
        raise InputError(
            f"--name {name!r}: use lower-case letters, digits, '.', '_' and '-'", hint="nothing was written"
        )
    if mirror is not None and not mirror.is_dir():
        raise InputError(f"--mirror {mirror}: not a directory", hint="nothing was written")
    output = (output or Path("envbuilder-recipes")).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="envbuilder-new-", dir=scratch_parent()))
    try:
        tree = open_tree(target, commit, mirror, scratch)
        recipe = name or recipe_name(tree.name)
        if (output / "recipes" / f"{recipe}.yaml").exists():
            raise InputError(
                f"{output / 'recipes' / (recipe + '.yaml')} exists; envbuilder new does not overwrite",
                hint="choose another --name or --output, or remove the old file; nothing was written",
            )
        draft = analyse(tree, recipe, index=index or default_index(), scratch=scratch / "work", mirror=mirror)
        files = writer.write(draft, output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Result(draft=draft, output=output, files=files, seconds=time.monotonic() - started)
