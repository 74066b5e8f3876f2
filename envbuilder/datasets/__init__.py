"""Synthetic smoke-test data sets, written by envbuilder (never downloaded). Each generator is a
standalone script run with the env's Python (numpy and Pillow come with torchvision), named by a
recipe's `smoke.data`."""

from __future__ import annotations

from pathlib import Path

GENERATORS = {"dnerf": "dnerf.py"}


def script(name: str) -> Path | None:
    file = GENERATORS.get(name)
    return Path(__file__).with_name(file) if file else None
