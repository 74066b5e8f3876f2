"""The errors a lock can raise. All are EnvbuilderError subclasses, so the CLI renders them and
picks the exit code: a malformed lock is bad input (2); a file whose bytes differ from the lock,
a failed resolution or download is a failed run (1)."""

from __future__ import annotations

from pathlib import Path

from envbuilder.errors import CompatError, EnvbuilderError, InputError


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
