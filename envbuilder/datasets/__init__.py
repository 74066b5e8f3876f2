"""Synthetic smoke-test data sets, written by envbuilder (never downloaded). Each generator is a
standalone script run with the env's Python (numpy and Pillow come with torchvision), named by a
recipe's `smoke.data`.

A generator prints one JSON line of facts. Some build on the method's own models (Disco4D's input
is made from the SMPL-X model the stage loads, stand-in or licensed): they are given the paths of
the recipe's assets as `--asset NAME=PATH`, and list what they read under "inputs", so that a
data set made from a stand-in is written again once the real model is installed."""

from __future__ import annotations

from pathlib import Path

GENERATORS = {"dnerf": "dnerf.py", "talking-head": "talking_head.py", "disco4d-video": "disco4d_video.py"}
READS_ASSETS = {"disco4d-video"}  # generators given --asset NAME=PATH for every asset of the recipe


def not_written_yet(name: str | None) -> str | None:
    """Why a recipe's smoke run cannot start yet: its data generator is still to be written
    (a recipe may name one that a later envbuilder provides)."""
    if name is None or name in GENERATORS:
        return None
    return f"envbuilder has no synthetic {name!r} data generator yet (known: {', '.join(GENERATORS)})"


def script(name: str) -> Path | None:
    file = GENERATORS.get(name)
    return Path(__file__).with_name(file) if file else None


def reads_assets(name: str) -> bool:
    return name in READS_ASSETS
