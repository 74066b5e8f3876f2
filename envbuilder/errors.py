"""One exception hierarchy. Every error a user can cause or meet is an EnvbuilderError.

The CLI turns them into a message, an optional hint and an exit code; nothing else in the
package decides exit codes (see README, "Exit codes").
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BLOCKED_ON_ASSETS = 3


class EnvbuilderError(Exception):
    """Base class: a message for the user, a hint saying what to do, and an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_json(self) -> dict[str, object]:
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


class InputError(EnvbuilderError):
    """Bad input: an option, a recipe name, an arch. Nothing was written."""

    exit_code = EXIT_BAD_INPUT


class SpecError(InputError):
    """A malformed recipe, extension or patch file. Names the file, line and key."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f":{line}"
            where += ": "
        if key:
            where += f"{key}: "
        super().__init__(where + message, hint=hint)
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key

    def to_json(self) -> dict[str, object]:
        data = super().to_json()
        data.update(file=self.file, line=self.line, key=self.key)
        return data


class CompatError(InputError):
    """The requested combination cannot work (arch vs CUDA, gcc vs nvcc, torch vs nvcc)."""


class ToolNotFound(EnvbuilderError):
    """An external program (git, nvcc, a Python) is missing."""

    exit_code = EXIT_BAD_INPUT


class CommandFailed(EnvbuilderError):
    """An external command exited non-zero. Keeps the log path and the output's tail."""

    def __init__(
        self,
        message: str,
        *,
        argv: list[str],
        returncode: int,
        log: Path | None = None,
        tail: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv
        self.returncode = returncode
        self.log = log
        self.tail = tail

    def to_json(self) -> dict[str, object]:
        data = super().to_json()
        data.update(argv=self.argv, returncode=self.returncode, log=str(self.log) if self.log else None)
        return data


class StepFailed(EnvbuilderError):
    """A build step failed. Names the step, its log, and what the log says went wrong."""

    def __init__(
        self,
        step: str,
        message: str,
        *,
        log: Path | None = None,
        tail: str = "",
        hint: str | None = None,
        diagnoses: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"step '{step}' failed: {message}", hint=hint)
        self.step = step
        self.log = log
        self.tail = tail
        self.diagnoses = diagnoses or []

    def to_json(self) -> dict[str, object]:
        data = super().to_json()
        data.update(step=self.step, log=str(self.log) if self.log else None, diagnoses=self.diagnoses)
        return data


class EnvLocked(EnvbuilderError):
    """Another envbuilder process is building the same environment."""


class AssetsBlocked(EnvbuilderError):
    """A gated asset is missing; the user must fetch it by hand."""

    exit_code = EXIT_BLOCKED_ON_ASSETS
