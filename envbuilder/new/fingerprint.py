"""Is an extension found in a tree really one of the shared extensions envbuilder ships?

Not by name: by the module its setup.py builds, the files envbuilder's own patches for it edit,
and the interface the shared extension's probe uses (known.FINGERPRINTS). A vendored fork whose Python or C++
interface differs gets an extension entry of its own: the shared one's probe would not fit it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from envbuilder.new.known import FINGERPRINTS, ApiCheck, Fingerprint
from envbuilder.new.setup_py import ExtModule, SetupPy
from envbuilder.recipe.catalog import Catalog


@dataclass
class Match:
    candidate: Fingerprint | None  # the shared extension it looks like
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def extension(self) -> str | None:
        """The shared extension's name when every check passed."""
        return self.candidate.extension if self.candidate and not self.failed else None


def _class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _namedtuple(tree: ast.Module, check: ApiCheck) -> str | None:
    cls = _class(tree, check.symbol)
    if cls is None:
        return f"{check.file} has no class {check.symbol}"
    fields = {
        n.target.id: n.value is not None
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    missing = [f for f in check.needs if f not in fields]
    if missing:
        return f"{check.symbol} lacks {', '.join(missing)}"
    extra = [f for f, has_default in fields.items() if not has_default and f not in (*check.needs, *check.allows)]
    if extra:
        return f"{check.symbol} requires {', '.join(extra)}, which the shared extension's probe does not pass"
    return None


def _params(tree: ast.Module, check: ApiCheck) -> str | None:
    class_name, _, method = check.symbol.partition(".")
    cls = _class(tree, class_name)
    func = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method), None) if cls else None
    if func is None:
        return f"{check.file} has no {check.symbol}"
    args = [*func.args.posonlyargs, *func.args.args]
    if args and args[0].arg == "self":
        args = args[1:]
    names = [a.arg for a in args] + [a.arg for a in func.args.kwonlyargs]
    required = [a.arg for a in args[: len(args) - len(func.args.defaults)]]
    required += [a.arg for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults, strict=True) if d is None]
    missing = [n for n in check.needs if n not in names]
    if missing:
        return f"{check.symbol} has no parameter {', '.join(missing)}"
    extra = [n for n in required if n not in (*check.needs, *check.allows)]
    if extra:
        return f"{check.symbol} requires {', '.join(extra)}, which the shared extension's probe does not pass"
    return None


def cpp_param_count(text: str, function: str) -> int | None:
    """Parameters of the first declaration or definition of `function` (None: not found)."""
    code = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.DOTALL)
    m = re.search(rf"\b{re.escape(function)}\s*\(", code)
    if not m:
        return None
    depth, start, params, angle = 1, m.end(), [], 0
    current: list[str] = []
    for ch in code[start:]:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                break
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        if ch == "," and depth == 1 and angle == 0:
            params.append("".join(current))
            current = []
        else:
            current.append(ch)
    params.append("".join(current))
    params = [p.strip() for p in params if p.strip()]
    return 0 if params in ([], ["void"]) else len(params)


def _check(directory: Path, check: ApiCheck) -> str | None:
    path = directory / check.file
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"no {check.file}"
    if check.kind in ("namedtuple", "params"):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return f"{check.file} is not valid Python"
        return _namedtuple(tree, check) if check.kind == "namedtuple" else _params(tree, check)
    if check.kind == "cpp-binding":
        if not re.search(rf"\.def\s*\(\s*\"{re.escape(check.symbol)}\"", text):
            return f"{check.file} does not bind {check.symbol}"
        return None
    count = cpp_param_count(text, check.symbol)
    if count is None:
        return f"{check.file} does not declare {check.symbol}"
    if count != check.count:
        return f"{check.symbol} takes {count} parameters in {check.file}, the shared extension's probe passes {check.count}"
    return None


def describe(check: ApiCheck) -> str:
    if check.kind == "namedtuple":
        return f"{check.symbol} fields"
    if check.kind == "params":
        return f"{check.symbol} parameters"
    if check.kind == "cpp-binding":
        return f"binds {check.symbol}"
    return f"{check.symbol} takes {check.count} parameters"


def match(directory: Path, setup: SetupPy, module: ExtModule, catalog: Catalog | None = None) -> Match:
    candidate = next(
        (fp for fp in FINGERPRINTS if module.name in fp.modules or (setup.package and setup.package == fp.package)),
        None,
    )
    result = Match(candidate)
    if candidate is None:
        return result
    if module.name in candidate.modules:
        result.passed.append(f"builds {module.name}")
    else:
        result.failed.append(
            f"builds {module.name}, the shared {candidate.extension} builds {', '.join(candidate.modules)}"
        )
    # the shared extension's patches name the files they edit: a tree that is that extension has them
    extension = (catalog or Catalog.default()).extension(candidate.extension)
    files = sorted({f for use in extension.patches for f in use.targets})
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        result.failed.append(f"lacks {', '.join(missing)}")
    else:
        result.passed.append(f"has the {len(files)} file(s) its patches edit")
    for check in candidate.api:
        problem = _check(directory, check)
        if problem:
            result.failed.append(problem)
        else:
            result.passed.append(describe(check))
    return result
