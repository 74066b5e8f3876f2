"""The errors a lock can raise (defined in envbuilder/errors.py with every other error): a
malformed lock is bad input (2); a file whose bytes differ from the lock, a failed resolution or
download is a failed run (1)."""

from envbuilder.errors import (
    ArtifactMismatch,
    DownloadFailed,
    FreezeError,
    InstallFailed,
    LockFileError,
    LockToolchainMismatch,
    ResolutionFailed,
)

__all__ = [
    "ArtifactMismatch",
    "DownloadFailed",
    "FreezeError",
    "InstallFailed",
    "LockFileError",
    "LockToolchainMismatch",
    "ResolutionFailed",
]
