"""Can this host build what the lock describes? Checked before anything is written: a lock made
for CUDA 13.0 cannot be built with nvcc 12.8 (torch refuses extensions across CUDA majors, and
a different minor changes every extension's content key), nor for Python 3.12 with 3.11."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from envbuilder.lock.errors import LockToolchainMismatch
from envbuilder.lock.model import Lock


def toolchain_problems(
    lock: Lock,
    *,
    cuda: Version | str | None = None,
    python: Version | str | None = None,
    gcc: Version | str | None = None,
) -> list[LockToolchainMismatch]:
    """What the host lacks, one error per mismatch (empty: it can build the lock). Compared:
    CUDA major.minor, Python major.minor, gcc major; a value the lock does not record is not checked."""
    part = lock.envbuilder
    if part is None:
        return []
    problems = []
    wanted_python = part.toolchain.python if part.toolchain and part.toolchain.python else None
    wanted_python = wanted_python or (part.target.python if part.target else None)
    checks = [
        (
            "CUDA",
            part.toolchain.cuda if part.toolchain else None,
            cuda,
            2,
            "install that CUDA toolkit and pass --cuda, or lock again on this host",
        ),
        (
            "Python",
            wanted_python,
            python,
            2,
            "pass --python with that version (pyenv/uv python install), or lock again for this Python",
        ),
        (
            "gcc",
            str(part.toolchain.gcc_major) if part.toolchain and part.toolchain.gcc_major else None,
            gcc,
            1,
            "put that gcc first on PATH (or set CXX), or lock again on this host",
        ),
    ]
    for what, wanted, have, parts, hint in checks:
        if wanted is None or have is None:
            continue
        if _release(wanted, parts) != _release(str(have), parts):
            problems.append(
                LockToolchainMismatch(
                    f"the lock needs {what} {_show(wanted, parts)}; this host has {what} {have}", hint=hint
                )
            )
    return problems


def _release(text: str, parts: int) -> tuple[int, ...]:
    try:
        release = Version(text).release
    except InvalidVersion:
        return (-1,)
    return tuple((release + (0,) * parts)[:parts])


def _show(text: str, parts: int) -> str:
    return ".".join(map(str, _release(text, parts)))
