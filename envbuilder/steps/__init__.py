"""The build steps, in the order they run: the one list the planner, the executor, the manifest
and the tests read. Adding a step is one module (see protocol.py for what it declares) and one
line here.

Step modules import what they run with inside run(): every command that plans imports them all,
and `envbuilder plan` must print in well under 300 ms."""

from __future__ import annotations

from envbuilder.steps import assets, extensions, manifest, patches, smoke, sources, toolchain, venv, verify, wheels
from envbuilder.steps.protocol import Deps, Step, key_of

STEPS: tuple[Step, ...] = (toolchain, sources, venv, wheels, patches, extensions, verify, assets, smoke, manifest)
BY_NAME: dict[str, Step] = {s.NAME: s for s in STEPS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def builds_on(name: str) -> tuple[str, ...]:
    """Every step whose outputs `name` may read: its DEPENDS and, through them, theirs."""
    seen: dict[str, None] = {}
    todo = list(BY_NAME[name].DEPENDS)
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen[dep] = None
            todo += BY_NAME[dep].DEPENDS
    return tuple(n for n in NAMES if n in seen)


__all__ = ["BY_NAME", "NAMES", "STEPS", "Deps", "Step", "builds_on", "key_of"]
