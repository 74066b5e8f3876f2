"""Find CUDA toolkits, host C++ compilers and Python interpreters on this machine.

Discovery runs a handful of fast commands (nvcc --version, g++ -dumpfullversion); it never
imports torch. Wrappers are resolved to the real toolkit: a /usr/local/bin/nvcc shell script must
not make CUDA_HOME=/usr/local (torch then fails to link: "cannot find -lcudart", bw §2).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from envbuilder import proc
from envbuilder.errors import EnvbuilderError


@dataclass(frozen=True)
class Toolkit:
    root: Path  # what CUDA_HOME must be
    version: Version  # major.minor.patch of nvcc
    found_by: str  # CUDA_HOME, PATH, /usr/local/cuda*, envbuilder toolkit …
    sm_codes: tuple[int, ...] = ()  # sm numbers ptxas can emit (nvcc --list-gpu-code)
    problems: tuple[str, ...] = ()  # e.g. no libcudart.so to link against

    @property
    def nvcc(self) -> Path:
        return self.root / "bin" / "nvcc"

    @property
    def release(self) -> Version:
        return Version(f"{self.version.major}.{self.version.minor}")

    def to_json(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "version": str(self.version),
            "found_by": self.found_by,
            "sm_codes": list(self.sm_codes),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class Compiler:
    path: Path
    version: Version
    name: str  # what was asked for: g++, g++-13, $CXX

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "version": str(self.version), "name": self.name}


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: Version  # may be only major.minor when read from a file name
    found_by: str

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "version": str(self.version), "found_by": self.found_by}


@dataclass
class _Seen:
    roots: set[Path] = field(default_factory=set)


_RELEASE_RE = re.compile(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)")


def nvcc_version(nvcc: Path) -> Version:
    out = proc.capture([str(nvcc), "--version"], timeout=30)
    match = _RELEASE_RE.search(out)
    if not match:
        raise EnvbuilderError(f"cannot read the CUDA version from '{nvcc} --version'")
    return Version(match.group(2))


def _toolkit_version(root: Path) -> Version:
    """version.json is free to read; nvcc --version is the fallback (wheel-assembled toolkits)."""
    try:
        data = json.loads((root / "version.json").read_text())
        return Version(data["cuda_nvcc"]["version"])
    except (OSError, ValueError, KeyError, TypeError, InvalidVersion):
        return nvcc_version(root / "bin" / "nvcc")


def _resolve_wrapper(nvcc: Path) -> Path | None:
    """The toolkit root behind an nvcc that may be a wrapper script."""
    real = nvcc.resolve()
    try:
        with real.open("rb") as f:
            is_elf = f.read(4) == b"\x7fELF"
    except OSError:
        return None
    if is_elf:
        return real.parent.parent
    # A script: ask nvcc itself where its driver lives (-dryrun prints `#$ _HERE_=<bin dir>`).
    try:
        out = proc.capture(
            [str(nvcc), "-dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull], timeout=30, merge_stderr=True
        )
    except EnvbuilderError as exc:
        out = getattr(exc, "tail", "") or exc.message
    match = re.search(r"^#\$ _HERE_=(.+)$", out, re.MULTILINE)
    return Path(match.group(1)).resolve().parent if match else None


def _toolkit_at(root: Path, found_by: str) -> Toolkit | None:
    nvcc = root / "bin" / "nvcc"
    if not (nvcc.is_file() and os.access(nvcc, os.X_OK)):
        return None
    try:
        version = _toolkit_version(root)
        codes_out = proc.capture([str(nvcc), "--list-gpu-code"], timeout=30)
    except EnvbuilderError:
        return None
    codes = tuple(int(m) for m in re.findall(r"sm_(\d+)", codes_out))
    problems = []
    if not any((root / d / "libcudart.so").exists() for d in ("lib64", "lib", "targets/x86_64-linux/lib")):
        problems.append("no libcudart.so to link against (torch extensions fail with 'cannot find -lcudart')")
    return Toolkit(root=root, version=version, found_by=found_by, sm_codes=codes, problems=tuple(problems))


def find_toolkits(extra_roots: list[tuple[Path, str]] | None = None) -> list[Toolkit]:
    """Every CUDA toolkit we can see, newest first; one entry per real directory."""
    candidates: list[tuple[Path, str]] = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append((Path(os.environ[var]), f"${var}"))
    on_path = shutil.which("nvcc")
    if on_path:
        root = _resolve_wrapper(Path(on_path))
        if root:
            candidates.append((root, f"nvcc on PATH ({on_path})"))
    candidates.extend(extra_roots or [])
    for base in (Path("/usr/local"), Path("/opt")):
        try:
            entries = sorted(base.iterdir())
        except OSError:
            continue
        candidates.extend((p, str(p)) for p in entries if p.name == "cuda" or p.name.startswith("cuda-"))
    toolkits: dict[Path, Toolkit] = {}
    for root, found_by in candidates:
        try:
            real = root.resolve()
        except OSError:
            continue
        if real in toolkits:
            continue
        toolkit = _toolkit_at(real, found_by)
        if toolkit:
            toolkits[real] = toolkit
    return sorted(toolkits.values(), key=lambda t: t.version, reverse=True)


def compiler_version(path: Path) -> Version:
    out = proc.capture([str(path), "-dumpfullversion", "-dumpversion"], timeout=30).strip()
    try:
        return Version(out.splitlines()[0])
    except (InvalidVersion, IndexError):
        raise EnvbuilderError(f"cannot read the version of {path}: {out!r}") from None


def find_compilers() -> list[Compiler]:
    """$CXX (if set), g++, and every g++-N on PATH; the first is what builds use by default."""
    names: list[str] = []
    if os.environ.get("CXX"):
        names.append(os.environ["CXX"])
    names.append("g++")
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names.extend(sorted(p.name for p in Path(directory).glob("g++-[0-9]*")))
        except OSError:
            continue
    compilers: dict[Path, Compiler] = {}
    for name in names:
        found = shutil.which(name)
        if not found:
            continue
        path = Path(found)
        real = path.resolve()
        if any(c.path.resolve() == real for c in compilers.values()):
            continue
        try:
            compilers[path] = Compiler(path=path, version=compiler_version(path), name=name)
        except EnvbuilderError:
            continue
    return list(compilers.values())


_VERSIONED_DIR = re.compile(r"^(?:cpython-)?(\d+\.\d+\.\d+)(?:[-+].*)?$")


def find_interpreters() -> list[Interpreter]:
    """CPython interpreters: the running one, python3.X on PATH, pyenv and uv installs."""
    found: list[Interpreter] = [
        Interpreter(Path(sys.executable), Version("%d.%d.%d" % sys.version_info[:3]), "running envbuilder")
    ]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    uv_root = Path(os.environ.get("UV_PYTHON_INSTALL_DIR", Path.home() / ".local/share/uv/python"))
    for base, label in ((pyenv_root / "versions", "pyenv"), (uv_root, "uv")):
        try:
            entries = sorted(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = _VERSIONED_DIR.match(entry.name)
            exe = entry / "bin" / "python3"
            if match and exe.exists():
                found.append(Interpreter(exe, Version(match.group(1)), label))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or "shims" in Path(directory).parts:  # pyenv shims are scripts, seen above
            continue
        for minor in range(6, 20):
            exe = Path(directory) / f"python3.{minor}"
            if exe.is_file() and os.access(exe, os.X_OK):
                found.append(Interpreter(exe, Version(f"3.{minor}"), "PATH"))
    unique: dict[Path, Interpreter] = {}
    for interp in found:
        try:
            real = interp.path.resolve()
        except OSError:
            continue
        unique.setdefault(real, interp)
    return list(unique.values())


def interpreter_facts(exe: Path) -> dict[str, str]:
    """Exact version, ABI tag and purelib of one interpreter (one short exec)."""
    script = (
        "import json,sys,sysconfig;print(json.dumps({'version':'%d.%d.%d'%sys.version_info[:3],"
        "'abi':sys.implementation.cache_tag,'implementation':sys.implementation.name}))"
    )
    facts: dict[str, str] = json.loads(proc.capture([str(exe), "-c", script], timeout=60))
    return facts
