"""The recipe search path: --recipes DIR, then $ENVBUILDER_PATH, then the built-in data.

A directory is either a data root (it has recipes/ and maybe extensions/ and patches/) or a flat
folder of recipe YAML files. The first directory that defines a name wins, so users can shadow a
built-in recipe or extension.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from envbuilder.errors import InputError, RecipeError
from envbuilder.paths import builtin_data_root
from envbuilder.recipe.load import Node, load_extension, load_patch, load_recipe
from envbuilder.recipe.model import Extension, Patch, Recipe


@dataclass(frozen=True)
class DataRoot:
    recipes: Path
    extensions: Path | None
    patches: Path | None
    origin: str  # "--recipes", "ENVBUILDER_PATH", "built-in"

    @classmethod
    def of(cls, directory: Path, origin: str) -> DataRoot:
        if (directory / "recipes").is_dir():
            ext, pat = directory / "extensions", directory / "patches"
            return cls(directory / "recipes", ext if ext.is_dir() else None, pat if pat.is_dir() else None, origin)
        return cls(directory, None, None, origin)


class Catalog:
    def __init__(self, roots: list[DataRoot]) -> None:
        self.roots = roots
        self._recipes: dict[str, Recipe] = {}
        self._extensions: dict[str, Extension] = {}
        self._patches: dict[str, Patch] = {}

    @classmethod
    def default(cls, user_dirs: list[Path] | None = None) -> Catalog:
        roots = []
        for directory in user_dirs or []:
            if not directory.is_dir():
                raise InputError(f"--recipes {directory}: not a directory")
            roots.append(DataRoot.of(directory.resolve(), "--recipes"))
        for entry in os.environ.get("ENVBUILDER_PATH", "").split(os.pathsep):
            if entry and Path(entry).is_dir():
                roots.append(DataRoot.of(Path(entry).resolve(), "ENVBUILDER_PATH"))
        roots.append(DataRoot.of(builtin_data_root(), "built-in"))
        return cls(roots)

    def recipe_files(self) -> dict[str, tuple[Path, str]]:
        """name -> (file, origin), first root wins."""
        found: dict[str, tuple[Path, str]] = {}
        for root in self.roots:
            for path in sorted(root.recipes.glob("*.yaml")):
                found.setdefault(path.stem, (path, root.origin))
        return found

    def _extension_files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for root in self.roots:
            if root.extensions:
                for path in sorted(root.extensions.glob("*/extension.yaml")):
                    found.setdefault(path.parent.name, path)
        return found

    def _patch_files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for root in self.roots:
            if root.patches:
                for path in sorted(root.patches.glob("*.yaml")):
                    found.setdefault(path.stem, path)
        return found

    def patch_names(self) -> list[str]:
        return sorted(self._patch_files())

    def recipe_path(self, name: str) -> Path:
        files = self.recipe_files()
        if name in files:
            return files[name][0]
        close = difflib.get_close_matches(name, files, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None
        known = ", ".join(sorted(files)) or "none"
        raise InputError(f"unknown recipe {name!r} (known: {known})", hint=hint or "see `envbuilder list`")

    def recipe(self, name: str) -> Recipe:
        if name not in self._recipes:
            self._recipes[name] = load_recipe(self.recipe_path(name), self._find_extension, self._find_patch)
        return self._recipes[name]

    def extension(self, name: str) -> Extension:
        if name not in self._extensions:
            files = self._extension_files()
            if name not in files:
                close = difflib.get_close_matches(name, files, n=3, cutoff=0.5)
                raise InputError(
                    f"unknown extension {name!r}",
                    hint=f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(sorted(files))}",
                )
            self._extensions[name] = load_extension(files[name], self._find_patch)
        return self._extensions[name]

    def patch(self, name: str) -> Patch:
        if name not in self._patches:
            files = self._patch_files()
            if name not in files:
                close = difflib.get_close_matches(name, files, n=3, cutoff=0.5)
                raise InputError(
                    f"unknown patch {name!r}",
                    hint=f"did you mean {' or '.join(close)}?"
                    if close
                    else f"known: {', '.join(sorted(files)) or 'none'}",
                )
            self._patches[name] = load_patch(files[name])
        return self._patches[name]

    def _find_patch(self, name: str, node: Node) -> Patch:
        try:
            return self.patch(name)
        except InputError as exc:
            if isinstance(exc, RecipeError):
                raise
            raise node.error(exc.message, hint=exc.hint) from None

    def _find_extension(self, name: str, node: Node) -> Extension:
        try:
            return self.extension(name)
        except InputError as exc:
            if isinstance(exc, RecipeError):
                raise
            raise node.error(exc.message, hint=exc.hint) from None
