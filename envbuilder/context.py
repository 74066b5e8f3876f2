"""What a running step sees: the env's layout on disk, the plan, its log, and a command runner.

Steps never print: they write to their log and report short notes through `ctx.note`, which
the executor's reporter renders (see report.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuilder import proc
from envbuilder.host import HostFacts
from envbuilder.plan import Plan

MANIFEST_NAME = "envbuilder.lock.json"

# Step inputs and outputs are JSON data: recorded in state.json and the manifest as they are.
Data = dict[str, Any]


@dataclass(frozen=True)
class Layout:
    """<prefix>/venv (the environment), src/ (patched sources), .envbuilder/ (state, logs,
    lock, built wheels) and envbuilder.lock.json (written last: its presence means ready)."""

    prefix: Path

    @property
    def venv(self) -> Path:
        return self.prefix / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def src(self) -> Path:
        return self.prefix / "src"

    @property
    def meta(self) -> Path:
        return self.prefix / ".envbuilder"

    @property
    def logs(self) -> Path:
        return self.meta / "logs"

    @property
    def state_file(self) -> Path:
        return self.meta / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.meta / "lock"

    @property
    def wheels(self) -> Path:
        return self.meta / "wheels"

    @property
    def manifest(self) -> Path:
        return self.prefix / MANIFEST_NAME

    @property
    def child(self) -> Path:
        """The running child's session, kept so a killed build's compilers can be stopped."""
        return self.meta / "child.json"


@dataclass
class Context:
    plan: Plan
    host: HostFacts
    layout: Layout
    log: Path
    outputs: dict[str, Data] = field(default_factory=dict)
    on_line: Callable[[str], None] | None = None
    on_note: Callable[[str], None] | None = None

    def note(self, text: str) -> None:
        """A short progress message: goes to the log and to the screen."""
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"# {text}\n")
        if self.on_note:
            self.on_note(text)

    def build_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for commands in the env: the venv and CUDA first on PATH."""
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the env must stand on its own
        env.pop("PYTHONHOME", None)
        env.update(self.plan.build_env)
        env["VIRTUAL_ENV"] = str(self.layout.venv)
        env["PATH"] = os.pathsep.join(
            [str(self.layout.venv / "bin"), str(self.plan.toolkit.root / "bin"), env.get("PATH", "")]
        )
        env.update(extra or {})
        return env

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float | None = None,
    ) -> None:
        proc.run(
            [str(a) for a in argv],
            log=self.log,
            env=env or self.build_env(),
            cwd=cwd,
            on_line=self.on_line,
            timeout=timeout,
            track=self.layout.child,
        )

    def capture(
        self,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 600,
    ) -> str:
        args = [str(a) for a in argv]
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"$ {proc.quote(args)}\n")
        out = proc.capture(args, env=env or self.build_env(), cwd=cwd, timeout=timeout)
        with self.log.open("a", encoding="utf-8") as f:
            f.write(out if out.endswith("\n") or not out else out + "\n")
        return out
