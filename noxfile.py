"""Test matrix. `nox -s tests` runs the suite on every supported Python (the full canary build
runs once, in .ci/run, not per Python)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    session.install(".[test]")
    session.run("pytest", "-m", "not build", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install(".[dev]")
    session.run("ruff", "check", "envbuilder", "tests")
    session.run("ruff", "format", "--check", "envbuilder", "tests")
    session.run("mypy")
