"""The env's venv, and what is installed into it outside a lock: the extension wheels envbuilder
built, with uv when it made the env and pip otherwise. (A lock's packages are installed by
envbuilder/lock/install.py, with envbuilder's own pip or uv.)

Every venv comes from `python -m venv`, which puts pip in it from the interpreter's own bundle,
offline: extension wheels are always built with the env's own pip (`pip wheel
--no-build-isolation`), so both backends build the same way, and old sdists whose setup.py
imports pip (chumpy) find it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from envbuilder.context import StepContext


class Installer:
    name = "?"

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.python = ctx.layout.python

    def create_venv(self, interpreter: Path, dest: Path, *, system_site_packages: bool) -> None:
        inherit = ["--system-site-packages"] if system_site_packages else []
        self.ctx.run([interpreter, "-m", "venv", *inherit, dest])

    def install(self, requirements: Sequence[str], *, options: Sequence[str] = ()) -> None:
        raise NotImplementedError

    def packages(self) -> dict[str, str]:
        """name -> version of everything importable in the env (system site-packages included)."""
        script = (
            "import json, importlib.metadata as m\n"
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))"
        )
        found: dict[str, str] = json.loads(self.ctx.capture([self.python, "-c", script]))
        return found

    def build_wheel(
        self, source: Path, out_dir: Path, env: dict[str, str], *, log: Path | None = None, name: str = ""
    ) -> None:
        argv: list[str | Path] = [self.python, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps"]
        argv += ["--disable-pip-version-check", "--wheel-dir", out_dir, source]
        self.ctx.run(argv, env=env, log=log, name=name)


class Pip(Installer):
    name = "pip"

    def install(self, requirements: Sequence[str], *, options: Sequence[str] = ()) -> None:
        if requirements:
            argv: list[str | Path] = [self.python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
            self.ctx.run([*argv, *options, *requirements])


class Uv(Installer):
    name = "uv"

    def install(self, requirements: Sequence[str], *, options: Sequence[str] = ()) -> None:
        from envbuilder.lock.tools import ensure_tools

        if requirements:  # envbuilder's own uv: none need be on PATH
            self.ctx.run([ensure_tools().uv, "pip", "install", "--python", self.python, *options, *requirements])


def for_env(name: str, ctx: StepContext) -> Installer:
    """The installer that made (or makes) the env: "uv" or "pip"."""
    return Uv(ctx) if name == "uv" else Pip(ctx)
