"""recipes x CUDA x Python, for users' CI (`envbuilder matrix --format github`). Pure: the CUDA
releases come from each recipe's torch variants, the Pythons from its python specifier."""

from __future__ import annotations

from typing import Any

from packaging.version import Version

from envbuilder.recipe.model import Recipe

PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def rows(
    recipes: list[Recipe], arch: str, cudas: list[str] | None = None, pythons: list[str] | None = None
) -> list[dict[str, Any]]:
    out = []
    for recipe in recipes:
        for variant in recipe.torch:
            cuda = f"{variant.cuda.major}.{variant.cuda.minor}"
            if cudas and cuda not in cudas:
                continue
            for python in pythons or PYTHONS:
                if not recipe.python.contains(Version(f"{python}.0"), prereleases=True):
                    continue
                out.append(
                    {
                        "recipe": recipe.name,
                        "cuda": cuda,
                        "torch": variant.tag,
                        "python": python,
                        "arch": arch,
                        # where CI gets the toolkit: PyPI wheels for 13.x, an NVIDIA image for 12.x
                        "toolkit": "envbuilder" if variant.cuda.major >= 13 else "image",
                        "image": None if variant.cuda.major >= 13 else f"nvidia/cuda:{cuda}.1-devel-ubuntu24.04",
                    }
                )
    return out
