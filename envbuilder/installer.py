"""Creating venvs and installing into them, with uv when present and pip otherwise.

Extension wheels are always built with the env's own pip (`pip wheel --no-build-isolation`), so
both backends build the same way; with uv, pip is installed into the env as a build tool.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from envbuilder.context import StepContext

PYPI = "https://pypi.org/simple"


class Installer:
    name = "?"

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.python = ctx.layout.python

    def create_venv(self, interpreter: Path, dest: Path, *, system_site_packages: bool) -> None:
        raise NotImplementedError

    def install(
        self,
        requirements: Sequence[str],
        *,
        index: str | None = None,
        constraints: Sequence[str] = (),
        options: Sequence[str] = (),
    ) -> None:
        raise NotImplementedError

    def packages(self) -> dict[str, str]:
        """name -> version of everything importable in the env (system site-packages included)."""
        script = (
            "import json, importlib.metadata as m\n"
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))"
        )
        found: dict[str, str] = json.loads(self.ctx.capture([self.python, "-c", script]))
        return found

    def build_wheel(self, source: Path, out_dir: Path, env: dict[str, str]) -> None:
        self.ctx.run(
            [
                self.python,
                "-m",
                "pip",
                "wheel",
                "-v",
                "--no-build-isolation",
                "--no-deps",
                "--disable-pip-version-check",
                "--wheel-dir",
                out_dir,
                source,
            ],
            env=env,
        )

    def _constraints_file(self, constraints: Sequence[str]) -> Path | None:
        if not constraints:
            return None
        fd, name = tempfile.mkstemp(suffix=".txt", prefix="envbuilder-constraints-")
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(constraints) + "\n")
        return Path(name)


class Pip(Installer):
    name = "pip"

    def create_venv(self, interpreter: Path, dest: Path, *, system_site_packages: bool) -> None:
        argv: list[str | Path] = [
            interpreter,
            "-m",
            "venv",
            *(["--system-site-packages"] if system_site_packages else []),
            dest,
        ]
        self.ctx.run(argv)

    def install(
        self,
        requirements: Sequence[str],
        *,
        index: str | None = None,
        constraints: Sequence[str] = (),
        options: Sequence[str] = (),
    ) -> None:
        if not requirements:
            return
        argv: list[str | Path] = [
            self.python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            *options,
        ]
        if index:
            argv += ["--index-url", index, "--extra-index-url", PYPI]
        cfile = self._constraints_file(constraints)
        if cfile:
            argv += ["-c", cfile]
        try:
            self.ctx.run([*argv, *requirements])
        finally:
            if cfile:
                cfile.unlink(missing_ok=True)


class Uv(Installer):
    name = "uv"

    def create_venv(self, interpreter: Path, dest: Path, *, system_site_packages: bool) -> None:
        argv: list[str | Path] = [
            "uv",
            "venv",
            "--python",
            interpreter,
            *(["--system-site-packages"] if system_site_packages else []),
            dest,
        ]
        self.ctx.run(argv)

    def install(
        self,
        requirements: Sequence[str],
        *,
        index: str | None = None,
        constraints: Sequence[str] = (),
        options: Sequence[str] = (),
    ) -> None:
        if not requirements:
            return
        argv: list[str | Path] = ["uv", "pip", "install", "--python", self.python, *options]
        if index:
            argv += ["--index", index]  # uv asks --index first and PyPI only for what it lacks
        cfile = self._constraints_file(constraints)
        if cfile:
            argv += ["--constraint", cfile]
        try:
            self.ctx.run([*argv, *requirements])
        finally:
            if cfile:
                cfile.unlink(missing_ok=True)


def for_env(name: str, ctx: StepContext) -> Installer:
    """The installer that made (or makes) the env: "uv" or "pip"."""
    return Uv(ctx) if name == "uv" else Pip(ctx)
