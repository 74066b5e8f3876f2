"""One exception hierarchy, and the one place exit codes are decided.

Every error a user can cause or meet is an EnvbuilderError (defined here, every one of them);
the CLI turns it into a message, an optional hint and its exit code. Outcomes that are not
errors (assets missing, a smoke run on stand-ins) are verdicts, which `exit_code_for` maps to
the process's exit code (see README, "Exit codes").
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BLOCKED_ON_ASSETS = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C

# ok: everything was proven; blocked: nothing failed, but something could not be proven
# (a licensed file is missing, or only stand-ins ran); failed: something is broken.
Verdict = Literal["ok", "blocked", "failed"]


def exit_code_for(verdicts: Iterable[Verdict]) -> int:
    """A failure anywhere wins, then anything blocked, else 0."""
    seen = set(verdicts)
    if "failed" in seen:
        return EXIT_FAILED
    if "blocked" in seen:
        return EXIT_BLOCKED_ON_ASSETS
    return EXIT_OK


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


class RecipeError(InputError):
    """A malformed data file (recipe, extension, patch, catalogue). Names the file, line and key."""

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
        diagnoses: list[dict[str, object]] | None = None,
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


class PatchError(EnvbuilderError):
    """A patch cannot apply: its target is missing, drifted, binary, or outside the root."""


class DownloadError(EnvbuilderError):
    """A download failed or its bytes are not what was published."""


class NotABinary(InputError):
    """`inspect` was given a file that is not an ELF object."""


class VerifyFailed(EnvbuilderError):
    """The built env does not hold what it claims (archs, imports, kernel probes)."""


class SmokeError(EnvbuilderError):
    """A smoke run cannot start (no data generator, a smoke file that no longer applies)."""


class SmokeFailed(EnvbuilderError):
    """A smoke step ran and failed its checks; `log` is that step's own log (diagnosis reads it)."""

    def __init__(self, message: str, *, log: Path | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.log = log


# --- locks (envbuilder/lock/) ------------------------------------------------------------------


class LockFileError(InputError):
    """A lock file that cannot be read: not TOML, not PEP 751, or not what envbuilder writes.
    Names the file, the key path (packages[3].wheels[0].hashes) and the line where it can."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None,
        key: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = str(file) if file is not None else "<lock>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}", hint=hint)
        self.file = str(file) if file is not None else None
        self.key = key
        self.line = line

    def to_json(self) -> dict[str, object]:
        data = super().to_json()
        data.update(file=self.file, key=self.key, line=self.line)
        return data


class ArtifactMismatch(EnvbuilderError):
    """A file's bytes are not the ones the lock names: its sha256 or its size differ.
    Nothing is installed when this is raised."""

    def __init__(self, package: str, filename: str, what: str, expected: str, actual: str, *, source: str) -> None:
        super().__init__(
            f"{package}: {filename} does not match the lock: {what} expected {expected}, got {actual} (from {source})",
            hint="the file changed on its index after the lock was made; if the change is wanted, "
            "lock again (`envbuilder lock`) and review the diff",
        )
        self.package = package
        self.filename = filename
        self.what = what
        self.expected = expected
        self.actual = actual
        self.source = source

    def to_json(self) -> dict[str, object]:
        data = super().to_json()
        data.update(
            package=self.package, filename=self.filename, what=self.what, expected=self.expected, actual=self.actual
        )
        return data


class DownloadFailed(EnvbuilderError):
    """An artifact could not be fetched (network, HTTP status, missing file)."""


class ResolutionFailed(EnvbuilderError):
    """The resolver found no set of packages that meets the requirements; keeps its output."""

    def __init__(self, message: str, *, tail: str = "", hint: str | None = None) -> None:
        super().__init__(message + (f"\n{tail}" if tail else ""), hint=hint)
        self.tail = tail


class InstallFailed(EnvbuilderError):
    """pip or uv failed to install a lock after envbuilder verified its files."""

    def __init__(self, message: str, *, installer: str, tail: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.installer = installer
        self.tail = tail


class FreezeError(InputError):
    """An env that cannot be frozen into a lock: not built by envbuilder, or changed since."""


class LockToolchainMismatch(CompatError):
    """The host cannot meet the lock's toolchain (CUDA major/minor, Python, gcc major)."""


class ToolsUnavailable(EnvbuilderError):
    """envbuilder's own pip/uv could not be installed (no registry reachable, too old)."""


# --- binary caches (envbuilder/remote.py, oci.py) --------------------------------------------


class RegistryError(EnvbuilderError):
    """A binary-cache remote (OCI registry, shared folder) answered an error or broke the protocol."""


class RegistryUnavailable(RegistryError):
    """The remote could not be reached (connection refused or reset, timeout, TLS failure)."""


class DigestMismatch(RegistryError):
    """What a remote served does not hash to the digest it was asked for."""


class RegistryAuthError(InputError):
    """The registry refused the credentials, or needs some and there are none."""


class ArtefactRefused(EnvbuilderError):
    """A binary-cache artefact (pulled, or about to be pushed) failed verification."""
