"""What a running step sees: the env's layout on disk, its log, and a command runner.

A step sees nothing of the plan: everything it may read comes in its own inputs (which its key
hashes) and in the outputs of the steps it depends on (whose keys its key chains). So a key can
never miss what a step used. Steps never print: they write to their log and report short notes
through `ctx.note`, which the executor's reporter renders (see report.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuilder import proc
from envbuilder.paths import default_prefix

MANIFEST_NAME = "envbuilder.manifest.json"
LEGACY_MANIFEST_NAME = "envbuilder.lock.json"  # before real locks existed; still read for old envs

# Step outputs are JSON data: recorded in state.json and the manifest as they are.
Data = dict[str, Any]


@dataclass(frozen=True)
class Layout:
    """<prefix>/venv (the environment), src/<recipe> (the patched sources), .envbuilder/ (state,
    logs, lock, built wheels) and envbuilder.manifest.json (written last: its presence means ready).

    The one place that knows where things are in an env; nothing else joins these paths."""

    prefix: Path
    recipe: str = ""  # the env's recipe: names its source tree

    @classmethod
    def for_recipe(cls, recipe: str, prefix: Path | None = None) -> Layout:
        """The env of `recipe` at `prefix` (default: $ENVBUILDER_HOME/envs/<recipe>)."""
        return cls((prefix or default_prefix(recipe)).absolute(), recipe)

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
    def source_tree(self) -> Path:
        """The method's own tree (extensions with their own repository sit beside it)."""
        assert self.recipe, "Layout.source_tree needs the recipe's name"
        return self.src / self.recipe

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
    def legacy_manifest(self) -> Path:
        return self.prefix / LEGACY_MANIFEST_NAME

    def existing_manifest(self) -> Path | None:
        """The env's record of what was built: today's name, or the one envs built before locks have."""
        return next((p for p in (self.manifest, self.legacy_manifest) if p.is_file()), None)

    @property
    def smoke(self) -> Path:
        return self.prefix / "smoke"

    @property
    def child(self) -> Path:
        """The running child's session, kept so a killed build's compilers can be stopped."""
        return self.meta / "child.json"

    def child_file(self, name: str = "") -> Path:
        return self.child if not name else self.meta / f"child-{name}.json"

    def children(self) -> list[Path]:
        """Every running child's session file (one per concurrent command)."""
        return sorted(self.meta.glob("child*.json"))

    def is_ready(self) -> bool:
        return self.existing_manifest() is not None

    def status(self) -> str:
        """built | incomplete | - (nothing there)."""
        return "built" if self.is_ready() else "incomplete" if self.meta.is_dir() else "-"


def child_env(venv: Path, extra: Mapping[str, str] | None = None, *, path_first: Sequence[Path] = ()) -> dict[str, str]:
    """The environment for commands run in an env: its venv (and `path_first`) first on PATH, no
    PYTHONPATH/PYTHONHOME from the caller (the env must stand on its own), then `extra`."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *(str(p) for p in path_first), env.get("PATH", "")])
    env.update(extra or {})
    return env


@dataclass
class StepContext:
    layout: Layout
    log: Path
    key: str = ""  # the running step's key, for the record
    on_line: Callable[[str], None] | None = None
    on_note: Callable[[str], None] | None = None

    def note(self, text: str) -> None:
        """A short progress message: goes to the log and to the screen."""
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"# {text}\n")
        if self.on_note:
            self.on_note(text)

    def env(self, extra: Mapping[str, str] | None = None, *, path_first: Sequence[Path] = ()) -> dict[str, str]:
        return child_env(self.layout.venv, extra, path_first=path_first)

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float | None = None,
        log: Path | None = None,
        name: str = "",
    ) -> None:
        """Run a command, its output into the step's log (or `log`); `name` tells concurrent
        commands of one step apart (each is tracked, so a killed build's are all stopped)."""
        proc.run(
            [str(a) for a in argv],
            log=log or self.log,
            env=env or self.env(),
            cwd=cwd,
            on_line=self.on_line,
            timeout=timeout,
            track=self.layout.child_file(name),
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
        out = proc.capture(args, env=env or self.env(), cwd=cwd, timeout=timeout)
        with self.log.open("a", encoding="utf-8") as f:
            f.write(out if out.endswith("\n") or not out else out + "\n")
        return out
