"""setup.py files, read with `ast` and the static evaluator (never executed): the package name,
the CUDAExtension/CppExtension modules with their sources (also from globs and loops),
include_dirs (also built with os.path) and compile flags, install_requires and what the script
imports at build time."""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuilder.errors import InputError
from envbuilder.new import pyeval

EXTENSION_CLASSES = {
    "torch.utils.cpp_extension.CUDAExtension": "CUDAExtension",
    "torch.utils.cpp_extension.CppExtension": "CppExtension",
    "setuptools.Extension": "Extension",
    "setuptools.extension.Extension": "Extension",
    "distutils.core.Extension": "Extension",
    "distutils.extension.Extension": "Extension",
    "pybind11.setup_helpers.Pybind11Extension": "Pybind11Extension",
}
SETUP_FUNCTIONS = frozenset({"setuptools.setup", "distutils.core.setup", "skbuild.setup"})


@dataclass(frozen=True)
class ExtModule:
    kind: str  # CUDAExtension | CppExtension | Extension | Pybind11Extension
    name: str | None  # the module it builds (diff_gaussian_rasterization._C)
    sources: tuple[str, ...]  # relative to the setup.py's directory
    include_dirs: tuple[str, ...]
    flags: tuple[tuple[str, tuple[str, ...]], ...]  # ("cxx", flags), ("nvcc", flags)
    unknown: tuple[str, ...]  # what only running setup.py would tell
    line: int

    @property
    def cuda(self) -> bool:
        return self.kind == "CUDAExtension" or any(s.endswith((".cu", ".cuh")) for s in self.sources)


@dataclass(frozen=True)
class SetupPy:
    file: str  # relative to the tree's root
    directory: str  # the setup.py's directory, relative to the root ("." for the root)
    package: str | None  # setup(name=...)
    packages: tuple[str, ...]
    install_requires: tuple[str, ...]
    python_requires: str | None
    extensions: tuple[ExtModule, ...]
    imports: tuple[str, ...]  # top-level modules it imports (build-time needs)
    guesses: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # setup() arguments only running it would tell
    mentions_cmake: bool = False
    setup_line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def syntax_error(path: Path, root: Path, exc: SyntaxError) -> InputError:
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return InputError(
        f"{rel}:{exc.lineno or 0}: not valid Python ({exc.msg}); envbuilder reads build scripts with ast and "
        "cannot tell what this one builds",
        hint="fix the file in the repository (is it Python 2?), or pick a --commit where it parses; nothing was written",
    )


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run at import: the module's, and those in its if/try/with blocks."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        for name in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, name, None)
            if isinstance(inner, list) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out += _module_level(
                    [n for n in inner if isinstance(n, ast.stmt)]
                    + [s for h in inner if isinstance(h, ast.ExceptHandler) for s in h.body]
                )
    return out


def top_imports(tree: ast.Module) -> tuple[str, ...]:
    """Top-level modules imported when the file runs (not inside its functions)."""
    found: list[str] = []
    for node in _module_level(tree.body):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        else:
            continue
        found += [n for n in names if n not in found]
    return tuple(found)


def _relative(paths: list[str], base: Path) -> list[str]:
    out = []
    for p in paths:
        full = Path(p) if os.path.isabs(p) else base / p  # noqa: PTH117 - p is a string from the script
        try:
            out.append(os.path.relpath(os.path.normpath(full), base).replace(os.sep, "/"))
        except ValueError:
            out.append(p)
    return out


def _flags(value: Any) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], list[str]]:
    unknown: list[str] = []
    if isinstance(value, dict):
        out = []
        for key, flags in value.items():
            found, missing = pyeval.strings(flags)
            unknown += [f"extra_compile_args[{key!r}]: {u.why}" for u in missing]
            out.append((str(key), tuple(found)))
        return tuple(out), unknown
    found, missing = pyeval.strings(value)
    unknown += [f"extra_compile_args: {u.why}" for u in missing]
    return ((("cxx", tuple(found)),) if found else ()), unknown


def ext_module(call: pyeval.Call, base: Path, kind: str) -> ExtModule:
    name = call.arg("name", 0)
    sources, missing = pyeval.strings(call.arg("sources", 1, []))
    unknown = [f"sources: {u.why}" for u in missing]
    includes, missing_inc = pyeval.strings(call.arg("include_dirs", None, []))
    unknown += [f"include_dirs: {u.why}" for u in missing_inc]
    flags, missing_flags = _flags(call.arg("extra_compile_args", None, {}))
    unknown += missing_flags
    if not isinstance(name, str):
        unknown.append("name: " + (name.why if pyeval.is_unknown(name) else "not a string"))
        name = None
    return ExtModule(
        kind=kind,
        name=name,
        sources=tuple(_relative(sources, base)),
        include_dirs=tuple(_relative(includes, base)),
        flags=flags,
        unknown=tuple(unknown),
        line=call.line,
    )


def analyse(path: Path, root: Path) -> SetupPy:
    """One setup.py. A file that is not valid Python is an InputError naming file:line."""
    try:
        tree = pyeval.parse(path, root)
    except SyntaxError as exc:
        raise syntax_error(path, root, exc) from None
    evaluator = pyeval.Evaluator(path, root, frozenset(EXTENSION_CLASSES) | SETUP_FUNCTIONS)
    try:
        evaluator.run_module(tree)
    except RecursionError:
        evaluator.guesses.append(f"{path.name}: nested too deeply to evaluate")
    base = path.parent.resolve()
    extensions: list[ExtModule] = []
    setup_call = next((c for c in evaluator.calls if c.name in SETUP_FUNCTIONS), None)
    for call in evaluator.calls:
        if call.name in EXTENSION_CLASSES:
            extensions.append(ext_module(call, base, EXTENSION_CLASSES[call.name]))
    package = packages = requires = python_requires = None
    unknown: list[str] = []
    if setup_call is not None:
        package = setup_call.arg("name")
        if not isinstance(package, str):
            unknown.append("setup(name=…)")
            package = None
        pkgs, missing = pyeval.strings(setup_call.arg("packages", None, []))
        packages = tuple(pkgs)
        if missing:
            unknown.append("setup(packages=…)")
        reqs, missing = pyeval.strings(setup_call.arg("install_requires", None, []))
        requires = tuple(reqs)
        if missing:
            unknown.append("setup(install_requires=…)")
        pr = setup_call.arg("python_requires")
        python_requires = pr if isinstance(pr, str) else None
    root_r = root.resolve()
    rel_dir = base.relative_to(root_r).as_posix() if base != root_r else "."
    text = path.read_text(encoding="utf-8", errors="replace")
    return SetupPy(
        file=path.resolve().relative_to(root_r).as_posix(),
        directory=rel_dir,
        package=package,
        packages=packages or (),
        install_requires=requires or (),
        python_requires=python_requires,
        extensions=tuple(extensions),
        imports=top_imports(tree),
        guesses=tuple(evaluator.guesses),
        unknown=tuple(unknown),
        mentions_cmake="cmake" in text.lower(),
        setup_line=setup_call.line if setup_call else None,
    )
