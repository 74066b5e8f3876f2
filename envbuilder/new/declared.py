"""What the method says it needs: requirements*.txt (with -r includes), environment.yml (conda
dependencies and its pip: section), pyproject.toml [project], setup.py install_requires and the
README's install commands. Each entry keeps the file and line it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envbuilder.errors import EnvbuilderError
from envbuilder.new.readme import Command
from envbuilder.recipe import yamlfile

REQUIREMENTS_RE = re.compile(r"^requirements[\w.-]*\.(txt|in)$", re.I)
ENVIRONMENT_RE = re.compile(r"^environment[\w.-]*\.ya?ml$", re.I)
CONDA_SPEC_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<op>==|>=|<=|=|>|<|!=)?\s*(?P<ver>[^=\s]*)?(=\S*)?$")


@dataclass(frozen=True)
class Declared:
    text: str  # a PEP 508 requirement, a local path, a VCS or file URL
    kind: str  # requirement | local | vcs | url
    where: str  # file:line
    origin: str  # requirements.txt | environment.yml pip | environment.yml conda | setup.py | pyproject.toml | README pip | README mim
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str | None:
        if self.kind != "requirement":
            return None
        return canonicalize_name(Requirement(self.text).name)


@dataclass
class Declarations:
    items: list[Declared] = field(default_factory=list)
    python: list[tuple[str, str]] = field(default_factory=list)  # (what upstream asks for, where)
    problems: list[str] = field(default_factory=list)  # lines that could not be read
    files: list[str] = field(default_factory=list)  # the files read


def _classify(text: str, base: Path, root: Path) -> tuple[str, str]:
    """(kind, normalised text) of one requirement-like token."""
    if text.startswith(("git+", "hg+", "svn+", "bzr+")) or " @ git+" in text or "@git+" in text:
        return "vcs", text
    if re.match(r"^(https?|file)://", text):
        return "url", text
    candidate = (base / text).resolve()
    looks_local = (
        text in (".", "..")
        or text.startswith(("./", "../", "/"))
        or ("/" in text and not re.search(r"[=<>~!;\[]", text))
    )
    if looks_local or (
        candidate.is_dir() and candidate.is_relative_to(root.resolve()) and not re.search(r"[=<>~!]", text)
    ):
        try:
            return "local", candidate.relative_to(root.resolve()).as_posix() or "."
        except ValueError:
            return "local", text
    return "requirement", text


def _requirement_line(
    out: Declarations, raw: str, where: str, origin: str, base: Path, root: Path, options: tuple[str, ...] = ()
) -> None:
    line = re.sub(r"(^|\s)#.*$", "", raw).strip()
    if not line:
        return
    opts = list(options)
    if line.startswith(("-e ", "--editable ")):
        line = line.split(None, 1)[1].strip()
        opts.append("-e")
    if line.startswith("-"):
        return  # index and find-links options: the recipe's torch table and PyPI decide
    kind, text = _classify(line, base, root)
    if kind == "requirement":
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            out.problems.append(f"{where}: {text!r} is not a requirement pip understands ({exc})")
            return
    out.items.append(Declared(text, kind, where, origin, tuple(opts)))


def read_requirements(out: Declarations, path: Path, root: Path, seen: set[Path] | None = None) -> None:
    seen = seen if seen is not None else set()
    real = path.resolve()
    if real in seen or not real.is_file() or not real.is_relative_to(root.resolve()):
        return
    seen.add(real)
    rel = real.relative_to(root.resolve()).as_posix()
    if rel in out.files:  # the docs' `pip install -r requirements.txt` names a file already read
        return
    out.files.append(rel)
    for number, raw in enumerate(real.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        stripped = raw.strip()
        m = re.match(r"^(-r|--requirement|-c|--constraint)\s*=?\s*(\S+)", stripped)
        if m:
            if m.group(1) in ("-r", "--requirement"):
                read_requirements(out, real.parent / m.group(2), root, seen)
            continue
        _requirement_line(out, raw, f"{rel}:{number}", Path(rel).name, real.parent, root)


def _conda(out: Declarations, spec: str, where: str) -> None:
    spec = spec.split("::")[-1].strip()
    m = CONDA_SPEC_RE.match(spec)
    if not m:
        out.problems.append(f"{where}: conda dependency {spec!r} not understood")
        return
    name, op, version = m.group("name"), m.group("op"), m.group("ver")
    if name.lower() == "python":
        out.python.append((f"python{'=' if op == '=' else (op or '')}{version or ''}", where))
        return
    text = name if not version else f"{name}{'==' if op in ('=', None) else op}{version}"
    try:
        Requirement(text)
    except InvalidRequirement:
        out.problems.append(f"{where}: conda dependency {spec!r} not understood")
        return
    out.items.append(Declared(text, "requirement", where, "environment.yml conda"))


def read_environment(out: Declarations, path: Path, root: Path) -> None:
    rel = path.relative_to(root).as_posix()
    try:
        data = yamlfile.loads(path.read_text(encoding="utf-8", errors="replace"), rel)
    except EnvbuilderError as exc:
        out.problems.append(f"{exc.message} (environment file not read)")
        return
    out.files.append(rel)
    deps = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(deps, list):
        return
    lines = getattr(deps, "item_lines", [0] * len(deps))
    for item, number in zip(deps, lines, strict=True):
        where = f"{rel}:{number}"
        if isinstance(item, str):
            _conda(out, item, where)
        elif isinstance(item, dict) and isinstance(item.get("pip"), list):
            pip = item["pip"]
            pip_lines = getattr(pip, "item_lines", [number] * len(pip))
            for entry, pip_number in zip(pip, pip_lines, strict=True):
                if isinstance(entry, str):
                    _requirement_line(out, entry, f"{rel}:{pip_number}", "environment.yml pip", path.parent, root)


def read_pyproject(out: Declarations, path: Path, root: Path) -> None:
    rel = path.relative_to(root).as_posix()
    try:
        import tomllib  # type: ignore[import-not-found, unused-ignore]  # Python >= 3.11
    except ImportError:  # Python 3.10: the same parser, from PyPI (a dependency there)
        import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        out.problems.append(f"{rel}: not valid TOML ({exc})")
        return
    out.files.append(rel)
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    lines = text.splitlines()

    def line_of(needle: str) -> int:
        return next((i for i, line in enumerate(lines, 1) if needle in line), 1)

    for dep in project.get("dependencies") or []:
        if isinstance(dep, str):
            _requirement_line(out, dep, f"{rel}:{line_of(dep)}", "pyproject.toml", path.parent, root)
    if isinstance(project.get("requires-python"), str):
        out.python.append((f"requires-python {project['requires-python']}", f"{rel}:{line_of('requires-python')}"))


def read(
    root: Path, commands: list[Command], install_requires: list[tuple[str, str]], python_requires: list[tuple[str, str]]
) -> Declarations:
    """Everything the tree declares. `commands`: the README's; `install_requires`: (requirement,
    where) from the root setup.py; `python_requires`: (specifier, where)."""
    out = Declarations()
    for path in sorted(root.iterdir()):
        if path.is_file() and REQUIREMENTS_RE.match(path.name):
            read_requirements(out, path, root)
    for path in sorted(root.iterdir()):
        if path.is_file() and ENVIRONMENT_RE.match(path.name):
            read_environment(out, path, root)
    if (root / "pyproject.toml").is_file():
        read_pyproject(out, root / "pyproject.toml", root)
    for text, where in install_requires:
        _requirement_line(out, text, where, "setup.py", root, root)
    for spec, where in python_requires:
        out.python.append((f"python_requires {spec}", where))
    for cmd in commands:
        origin = f"README {cmd.tool}" if cmd.file.lower().startswith("readme") else f"{Path(cmd.file).name} {cmd.tool}"
        if cmd.kind == "requirements-file":
            read_requirements(out, root / cmd.target, root)
        elif cmd.kind == "requirement" and cmd.tool in ("pip", "mim"):
            _requirement_line(out, cmd.target, cmd.where, origin, root, root, cmd.options)
        elif cmd.kind in ("vcs", "url") and cmd.tool == "pip":
            out.items.append(Declared(cmd.target, cmd.kind, cmd.where, origin, cmd.options))
        elif cmd.kind == "local" and cmd.clone is None and cmd.tool in ("pip", "setup.py"):
            out.items.append(Declared(cmd.target, "local", cmd.where, origin, cmd.options))
        elif cmd.kind == "python":
            out.python.append((cmd.target, cmd.where))
        elif cmd.kind == "conda":
            _conda(out, cmd.target, cmd.where)
    return out
