"""Synthetic smoke-test data sets, written by envbuilder (never downloaded). Each generator is a
standalone script run with the env's Python (numpy and Pillow come with torchvision), named by a
recipe's `smoke.data`."""

from __future__ import annotations

from pathlib import Path

GENERATORS = {"dnerf": "dnerf.py", "talking-head": "talking_head.py"}


def not_written_yet(name: str | None) -> str | None:
    """Why a recipe's smoke run cannot start yet: its data generator is still to be written
    (a recipe may name one that a later envbuilder provides)."""
    if name is None or name in GENERATORS:
        return None
    return f"envbuilder has no synthetic {name!r} data generator yet (known: {', '.join(GENERATORS)})"


def script(name: str) -> Path | None:
    file = GENERATORS.get(name)
    return Path(__file__).with_name(file) if file else None
