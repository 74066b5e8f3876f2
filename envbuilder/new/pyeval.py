"""Static evaluation of the simple Python that build scripts are made of, without running them.

setup.py files and JIT loaders compute their source lists and flags from string constants,
os.path, glob, pathlib, list comprehensions, loops and small helper functions. This evaluator
interprets exactly that subset over the parsed tree (`ast`): it reads the file system of the
checked-out tree (glob, listdir, exists), never imports a module, never opens a file for
reading code, never runs a subprocess. Whatever it cannot know (an environment variable, torch's
CUDA_HOME, torch.cuda.is_available()) is an `Unknown` that says why; a branch taken on an
unknown condition is written down as a guess.

Calls whose qualified name the caller asks for (setup, CUDAExtension, torch's load) are not
evaluated but recorded, with their evaluated arguments and line.
"""

# ruff: noqa: PTH117, PTH118, PTH207 - build scripts compute with os.path and glob on strings; this mirrors them
from __future__ import annotations

import ast
import contextlib
import fnmatch
import glob as globmod
import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MAX_STEPS = 200_000  # statements and expressions per file; a loop over a huge tree stops here
MAX_DEPTH = 20  # nested calls of the script's own functions
MAX_ITEMS = 20_000  # items produced by one loop or comprehension


class Unknown:
    """A value only running the code would tell."""

    __slots__ = ("line", "why")

    def __init__(self, why: str, line: int = 0) -> None:
        self.why = why
        self.line = line

    def __repr__(self) -> str:
        return f"<unknown: {self.why}>"

    def __bool__(self) -> bool:  # decisions go through Evaluator._truth, which says "undecided"
        return False


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


@dataclass
class Call:
    """A recorded call: its qualified name, evaluated arguments and where it is."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    line: int

    def arg(self, key: str, position: int | None = None, default: Any = None) -> Any:
        if key in self.kwargs:
            return self.kwargs[key]
        if position is not None and position < len(self.args):
            return self.args[position]
        return default


@dataclass(frozen=True)
class Ref:
    """A module, class or function named by its qualified name (os.path.join)."""

    qual: str


@dataclass(frozen=True, order=True)
class PathValue:
    """A pathlib.Path value."""

    path: PurePosixPath

    def __str__(self) -> str:
        return str(self.path)


@dataclass
class Function:
    node: ast.FunctionDef | ast.Lambda
    defaults: list[Any]
    kw_defaults: list[Any]
    closure: dict[str, Any]


@dataclass(frozen=True)
class Bound:
    """obj.method, for the str/list/dict/Path methods the evaluator knows."""

    obj: Any
    name: str


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Budget(Exception):
    pass


REDUCERS: dict[str, Callable[[list[Any]], Any]] = {"any": any, "all": all, "min": min, "max": max}
BUILTINS = frozenset(
    {
        "len",
        "sorted",
        "list",
        "tuple",
        "set",
        "frozenset",
        "str",
        "int",
        "bool",
        "range",
        "enumerate",
        "zip",
        "reversed",
        "any",
        "all",
        "min",
        "max",
        "print",
        "dict",
        "filter",
        "map",
    }
)


@dataclass
class Evaluator:
    """Evaluates one file. `record`: qualified names of calls to record instead of running."""

    path: Path
    root: Path
    record: frozenset[str]
    calls: list[Call] = field(default_factory=list)
    guesses: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    steps: int = 0
    depth: int = 0

    def __post_init__(self) -> None:
        self.path = self.path.resolve()
        self.root = self.root.resolve()
        self.cwd = self.path.parent  # pip runs setup.py in its own directory
        self.scopes: list[dict[str, Any]] = [{"__file__": str(self.path), "__name__": "__main__"}]
        self._seen_calls: set[tuple[str | None, int]] = set()
        self._invoked: set[int] = set()  # ids of the FunctionDef nodes some executed code called

    # --- entry points -----------------------------------------------------------------------

    def run_module(self, tree: ast.Module) -> dict[str, Any]:
        """Run the module's statements; then record the calls that no executed code reached
        (a JIT load inside a function nobody calls at import), evaluated in the module scope."""
        try:
            self._block(tree.body)
        except (_Return, _Break, _Continue):
            pass
        except _Budget:
            self.guesses.append(f"stopped after {MAX_STEPS} steps: the file does more than a build script should")
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or id(func) in self._invoked:
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and self._qual(node.func) in self.record:
                    if (self._qual(node.func), node.lineno) in self._seen_calls:
                        continue
                    try:
                        self._expr(node)
                    except (_Budget, RecursionError, _Return, _Break, _Continue):
                        break
        return self.scopes[0]

    def note(self, text: str, line: int) -> None:
        entry = f"{self._rel()}:{line}: {text}"
        if entry not in self.guesses:
            self.guesses.append(entry)

    # --- helpers ----------------------------------------------------------------------------

    def _rel(self) -> str:
        try:
            return self.path.relative_to(self.root).as_posix()
        except ValueError:
            return self.path.name

    def _tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Budget

    def _lookup(self, name: str, line: int) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in self.aliases:
            return Ref(self.aliases[name])
        if name in BUILTINS:
            return Ref(f"builtins.{name}")
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        return Unknown(f"name {name!r} is not defined here", line)

    def _qual(self, node: ast.expr) -> str | None:
        """The qualified name an expression names through imports (without evaluating it)."""
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    value = scope[node.id]
                    return value.qual if isinstance(value, Ref) else None
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._qual(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _inside(self, path: str) -> Path | None:
        """path (absolute, or relative to the script's directory) if it lies in the tree."""
        full = (self.cwd / path).resolve() if not os.path.isabs(path) else Path(path).resolve()
        return full if full == self.root or full.is_relative_to(self.root) else None

    # --- statements -------------------------------------------------------------------------

    def _block(self, body: Iterable[ast.stmt]) -> None:
        for stmt in body:
            self._stmt(stmt)

    def _stmt(self, node: ast.stmt) -> None:
        self._tick()
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    self.aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                for alias in node.names:
                    if alias.name != "*":
                        self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Assign):
            value = self._expr(node.value)
            for target in node.targets:
                self._assign(target, value)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self._assign(node.target, self._expr(node.value))
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                current = self._lookup(node.target.id, node.lineno)
                value = self._binop(node.op, current, self._expr(node.value), node.lineno)
                if isinstance(current, list) and isinstance(value, list):
                    current[:] = value  # += on a list mutates it (other names may hold it)
                    value = current
                self.scopes[-1][node.target.id] = value
        elif isinstance(node, ast.Expr):
            self._expr(node.value)
        elif isinstance(node, ast.If):
            test = self._truth(self._expr(node.test))
            if test is None:
                self.note(
                    f"took the 'if' branch of a condition only running the script would decide ({ast.unparse(node.test)[:80]})",
                    node.lineno,
                )
                self._block(node.body)
            else:
                self._block(node.body if test else node.orelse)
        elif isinstance(node, ast.For):
            self._for(node)
        elif isinstance(node, ast.While):
            self.note("skipped a while loop", node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.scopes[-1][node.name] = self._function(node)  # type: ignore[arg-type]
        elif isinstance(node, ast.Return):
            raise _Return(self._expr(node.value) if node.value is not None else None)
        elif isinstance(node, ast.Break):
            raise _Break
        elif isinstance(node, ast.Continue):
            raise _Continue
        elif isinstance(node, ast.Try) or (hasattr(ast, "TryStar") and isinstance(node, ast.TryStar)):
            self._block(node.body)
            self._block(node.orelse)
            self._block(node.finalbody)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    self._assign(item.optional_vars, Unknown("a with-statement's value", node.lineno))
            self._block(node.body)
        # ClassDef, Raise, Assert, Delete, Global, Pass, Match …: nothing a build script's
        # values depend on in practice; a raise is not followed (the branch was a guess anyway)

    def _for(self, node: ast.For) -> None:
        iterable = self._iter(self._expr(node.iter))
        if iterable is None:
            self.note(
                f"skipped a loop over something only running the script would know ({ast.unparse(node.iter)[:80]})",
                node.lineno,
            )
            return
        for count, item in enumerate(iterable):
            if count >= MAX_ITEMS:
                self.note(f"stopped a loop after {MAX_ITEMS} items", node.lineno)
                break
            self._assign(node.target, item)
            try:
                self._block(node.body)
            except _Break:
                break
            except _Continue:
                continue
        else:
            self._block(node.orelse)

    def _assign(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            self.scopes[-1][target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = value if isinstance(value, (list, tuple)) and len(value) == len(target.elts) else None
            for i, elt in enumerate(target.elts):
                self._assign(elt, items[i] if items is not None else Unknown("unpacking", target.lineno))
        elif isinstance(target, ast.Subscript):
            container = self._expr(target.value)
            key = self._expr(target.slice)
            if isinstance(container, dict) and not is_unknown(key):
                with contextlib.suppress(TypeError):  # an unhashable key: the script would fail too
                    container[key] = value
            elif isinstance(container, list) and isinstance(key, int) and -len(container) <= key < len(container):
                container[key] = value

    def _function(self, node: ast.FunctionDef | ast.Lambda) -> Function:
        args = node.args
        return Function(
            node=node,
            defaults=[self._expr(d) for d in args.defaults],
            kw_defaults=[self._expr(d) if d is not None else None for d in args.kw_defaults],
            closure=self.scopes[-1],
        )

    # --- expressions ------------------------------------------------------------------------

    def _expr(self, node: ast.expr | None) -> Any:
        if node is None:
            return None
        self._tick()
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self._lookup(node.id, line)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                part = self._expr(value.value) if isinstance(value, ast.FormattedValue) else self._expr(value)
                if is_unknown(part):
                    return part
                parts.append(str(part))
            return "".join(parts)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items: list[Any] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    inner = self._iter(self._expr(elt.value))
                    items.extend(inner if inner is not None else [Unknown("a starred value", line)])
                else:
                    items.append(self._expr(elt))
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    merged = self._expr(v)
                    if isinstance(merged, dict):
                        out.update(merged)
                    continue
                key = self._expr(k)
                if not is_unknown(key):
                    with contextlib.suppress(TypeError):
                        out[key] = self._expr(v)
            return out
        if isinstance(node, ast.Attribute):
            return self._attribute(self._expr(node.value), node.attr, line)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node.op, self._expr(node.left), self._expr(node.right), line)
        if isinstance(node, ast.UnaryOp):
            operand = self._expr(node.operand)
            if is_unknown(operand):
                return operand
            if isinstance(node.op, ast.Not):
                return not operand
            if isinstance(node.op, ast.USub) and isinstance(operand, (int, float)):
                return -operand
            return Unknown("an operator", line)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            test = self._truth(self._expr(node.test))
            if test is None:
                self.note(f"took the first value of a conditional expression ({ast.unparse(node.test)[:80]})", line)
                return self._expr(node.body)
            return self._expr(node.body if test else node.orelse)
        if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            return self._comprehension(node.generators, lambda: self._expr(node.elt), line)
        if isinstance(node, ast.DictComp):
            pairs = self._comprehension(node.generators, lambda: (self._expr(node.key), self._expr(node.value)), line)
            if is_unknown(pairs):
                return pairs
            return {k: v for k, v in pairs if not is_unknown(k)}
        if isinstance(node, ast.Subscript):
            return self._subscript(self._expr(node.value), node.slice, line)
        if isinstance(node, ast.Lambda):
            return self._function(node)
        if isinstance(node, ast.NamedExpr):
            value = self._expr(node.value)
            self._assign(node.target, value)
            return value
        return Unknown(type(node).__name__, line)

    def _truth(self, value: Any) -> bool | None:
        if is_unknown(value) or isinstance(value, (Ref, Bound, Function, Call)):
            return None
        try:
            return bool(value)
        except Exception:
            return None

    def _boolop(self, node: ast.BoolOp) -> Any:
        unknown: Unknown | None = None
        value: Any = None
        for operand in node.values:
            value = self._expr(operand)
            truth = self._truth(value)
            if truth is None:
                if unknown is None:
                    unknown = value if is_unknown(value) else Unknown("a condition", node.lineno)
                continue
            if isinstance(node.op, ast.And) and not truth:
                return value
            if isinstance(node.op, ast.Or) and truth:
                return value
        return unknown if unknown is not None else value

    def _compare(self, node: ast.Compare) -> Any:
        left = self._expr(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._expr(right_node)
            if is_unknown(left) or is_unknown(right):
                return left if is_unknown(left) else right
            try:
                if isinstance(op, ast.Eq):
                    ok = left == right
                elif isinstance(op, ast.NotEq):
                    ok = left != right
                elif isinstance(op, ast.In):
                    ok = left in right
                elif isinstance(op, ast.NotIn):
                    ok = left not in right
                elif isinstance(op, ast.Is):
                    ok = left is right
                elif isinstance(op, ast.IsNot):
                    ok = left is not right
                elif isinstance(op, ast.Lt):
                    ok = left < right
                elif isinstance(op, ast.LtE):
                    ok = left <= right
                elif isinstance(op, ast.Gt):
                    ok = left > right
                else:
                    ok = left >= right
            except TypeError:
                return Unknown("a comparison", node.lineno)
            if not ok:
                return False
            left = right
        return True

    def _comprehension(self, generators: list[ast.comprehension], element: Callable[[], Any], line: int) -> Any:
        out: list[Any] = []
        self.scopes.append(dict(self.scopes[-1]))  # comprehension variables stay inside

        def loop(i: int) -> Unknown | None:
            if i == len(generators):
                out.append(element())
                return None
            gen = generators[i]
            iterable = self._iter(self._expr(gen.iter))
            if iterable is None:
                return Unknown(f"a comprehension over {ast.unparse(gen.iter)[:60]}", line)
            for item in iterable:
                if len(out) >= MAX_ITEMS:
                    break
                self._assign(gen.target, item)
                conditions = [self._truth(self._expr(c)) for c in gen.ifs]
                if any(c is False for c in conditions):
                    continue
                if any(c is None for c in conditions):
                    return Unknown("a comprehension filter only running the script would decide", line)
                failed = loop(i + 1)
                if failed is not None:
                    return failed
            return None

        try:
            failed = loop(0)
        finally:
            self.scopes.pop()
        return failed if failed is not None else out

    def _iter(self, value: Any) -> list[Any] | None:
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, dict):
            return list(value)
        if isinstance(value, str):
            return list(value)
        if isinstance(value, range):
            return list(value)[:MAX_ITEMS]
        return None

    def _subscript(self, value: Any, slice_node: ast.expr, line: int) -> Any:
        if is_unknown(value):
            return value
        if isinstance(slice_node, ast.Slice):
            lower, upper, step = (
                self._expr(p) if p is not None else None for p in (slice_node.lower, slice_node.upper, slice_node.step)
            )
            if any(is_unknown(p) for p in (lower, upper, step)) or not isinstance(value, (list, tuple, str)):
                return Unknown("a slice", line)
            return value[lower:upper:step]
        key = self._expr(slice_node)
        if is_unknown(key):
            return key
        try:
            return value[key]
        except (KeyError, IndexError, TypeError):
            return Unknown(f"item {key!r}", line)

    def _binop(self, op: ast.operator, left: Any, right: Any, line: int) -> Any:
        if is_unknown(left):
            return left
        if is_unknown(right):
            return right
        if isinstance(op, ast.Div) and isinstance(left, PathValue) and isinstance(right, (str, PathValue)):
            return PathValue(left.path / str(right))
        if isinstance(op, ast.Div) and isinstance(left, str) and isinstance(right, PathValue):
            return PathValue(PurePosixPath(left) / right.path)
        try:
            if (
                isinstance(op, ast.Add)
                and type(left) is type(right)
                and isinstance(left, (str, list, tuple, int, float))
            ):
                return left + right
            if isinstance(op, ast.Mod) and isinstance(left, str):
                return left % right
            if isinstance(op, ast.Mult) and isinstance(left, (list, str)) and isinstance(right, int):
                return left * right
            if (
                isinstance(op, (ast.Sub, ast.Mult, ast.Add))
                and isinstance(left, (int, float))
                and isinstance(right, (int, float))
            ):
                return {ast.Sub: left - right, ast.Mult: left * right, ast.Add: left + right}[type(op)]
        except (TypeError, ValueError):
            pass
        return Unknown("an operation", line)

    # --- attributes and calls ---------------------------------------------------------------

    def _attribute(self, base: Any, attr: str, line: int) -> Any:
        if isinstance(base, Ref):
            qual = f"{base.qual}.{attr}"
            if qual == "os.name":
                return "posix"
            if qual == "sys.platform":
                return "linux"
            if qual == "os.sep":
                return "/"
            if qual == "sys.version_info":
                return (3, 12, 0, "final", 0)
            if qual in ("torch.utils.cpp_extension.CUDA_HOME", "torch.utils.cpp_extension.ROCM_HOME"):
                return Unknown(attr, line)
            if qual == "sys.argv":
                return Unknown("sys.argv", line)
            return Ref(qual)
        if isinstance(base, PathValue):
            p = base.path
            if attr == "parent":
                return PathValue(p.parent)
            if attr in ("name", "stem", "suffix"):
                return getattr(p, attr)
            if attr == "parents":
                return [PathValue(q) for q in p.parents]
            return Bound(base, attr)
        if isinstance(base, (str, list, dict)):
            return Bound(base, attr)
        if is_unknown(base):
            return base
        return Unknown(f"attribute {attr}", line)

    def _call(self, node: ast.Call) -> Any:
        line = node.lineno
        qual = self._qual(node.func)
        func = self._expr(node.func) if qual is None else Ref(qual)
        args: list[Any] = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                inner = self._iter(self._expr(a.value))
                args.extend(inner if inner is not None else [Unknown("*args", line)])
            else:
                args.append(self._expr(a))
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                merged = self._expr(kw.value)
                if isinstance(merged, dict):
                    kwargs.update({str(k): v for k, v in merged.items()})
            else:
                kwargs[kw.arg] = self._expr(kw.value)
        if isinstance(func, Ref) and func.qual in self.record:
            self._seen_calls.add((func.qual, line))
            call = Call(func.qual, args, kwargs, line)
            if not any(c.name == call.name and c.line == line for c in self.calls):
                self.calls.append(call)
            return call
        if isinstance(func, Function):
            return self._invoke(func, args, kwargs, line)
        if isinstance(func, Bound):
            return self._method(func, args, kwargs, line)
        if isinstance(func, Ref):
            return self._library(func.qual, args, kwargs, line)
        return func if is_unknown(func) else Unknown("a call", line)

    def _invoke(self, func: Function, args: list[Any], kwargs: dict[str, Any], line: int) -> Any:
        if self.depth >= MAX_DEPTH:
            return Unknown("calls nested too deep", line)
        spec = func.node.args
        positional = [*spec.posonlyargs, *spec.args]
        scope: dict[str, Any] = {}
        defaults = dict(
            zip([a.arg for a in positional][len(positional) - len(func.defaults) :], func.defaults, strict=True)
        )
        for i, arg in enumerate(positional):
            if i < len(args):
                scope[arg.arg] = args[i]
            elif arg.arg in kwargs:
                scope[arg.arg] = kwargs.pop(arg.arg)
            else:
                scope[arg.arg] = defaults.get(arg.arg, Unknown(f"argument {arg.arg}", line))
        if spec.vararg:
            scope[spec.vararg.arg] = tuple(args[len(positional) :])
        for arg, default in zip(spec.kwonlyargs, func.kw_defaults, strict=True):
            scope[arg.arg] = kwargs.pop(arg.arg, default)
        if spec.kwarg:
            scope[spec.kwarg.arg] = kwargs
        self.scopes.append({**func.closure, **scope})
        self._invoked.add(id(func.node))
        self.depth += 1
        try:
            if isinstance(func.node, ast.Lambda):
                return self._expr(func.node.body)
            self._block(func.node.body)
            return None
        except _Return as ret:
            return ret.value
        except (_Break, _Continue):
            return None
        finally:
            self.depth -= 1
            self.scopes.pop()

    def _method(self, bound: Bound, args: list[Any], kwargs: dict[str, Any], line: int) -> Any:
        obj, name = bound.obj, bound.name
        if any(is_unknown(a) for a in args) and name not in ("append", "extend", "insert", "get"):
            return Unknown(f".{name}() of an unknown value", line)
        try:
            if isinstance(obj, list):
                if name == "append":
                    obj.append(args[0])
                    return None
                if name == "extend":
                    items = self._iter(args[0])
                    obj.extend(items if items is not None else [Unknown("extend", line)])
                    return None
                if name == "insert":
                    obj.insert(args[0], args[1])
                    return None
                if name == "copy":
                    return list(obj)
                if name in ("index", "count"):
                    return getattr(obj, name)(*args)
            if isinstance(obj, dict):
                if name == "get":
                    return obj.get(args[0], args[1] if len(args) > 1 else None)
                if name in ("keys", "values"):
                    return list(getattr(obj, name)())
                if name == "items":
                    return [tuple(kv) for kv in obj.items()]
                if name == "update":
                    if args and isinstance(args[0], dict):
                        obj.update(args[0])
                    obj.update(kwargs)
                    return None
                if name == "setdefault":
                    return obj.setdefault(args[0], args[1] if len(args) > 1 else None)
                if name == "copy":
                    return dict(obj)
            if isinstance(obj, str) and name in (
                "endswith",
                "startswith",
                "replace",
                "split",
                "rsplit",
                "strip",
                "lstrip",
                "rstrip",
                "lower",
                "upper",
                "join",
                "format",
                "splitlines",
                "removesuffix",
                "removeprefix",
            ):
                if name == "join":
                    items = self._iter(args[0])
                    if items is None or any(not isinstance(i, str) for i in items):
                        return Unknown("join of unknown items", line)
                    return obj.join(items)
                if name == "format" and any(is_unknown(v) for v in kwargs.values()):
                    return Unknown("format", line)
                if name in ("endswith", "startswith") and isinstance(args[0], list):
                    args = [tuple(args[0])]
                return getattr(obj, name)(*args, **kwargs)
            if isinstance(obj, PathValue):
                return self._path_method(obj, name, args, line)
        except (IndexError, TypeError, ValueError, KeyError):
            pass
        return Unknown(f".{name}()", line)

    def _path_method(self, obj: PathValue, name: str, args: list[Any], line: int) -> Any:
        p = obj.path
        if name in ("resolve", "absolute", "expanduser"):
            return PathValue(PurePosixPath(os.path.normpath(str(self.cwd / p))))
        if name == "joinpath":
            return PathValue(p.joinpath(*map(str, args)))
        if name == "as_posix":
            return str(p)
        if name in ("exists", "is_dir", "is_file"):
            inside = self._inside(str(p))
            if inside is None:
                return Unknown(f"whether {p} exists", line)
            return {"exists": inside.exists, "is_dir": inside.is_dir, "is_file": inside.is_file}[name]()
        if name in ("glob", "rglob"):
            base = self._inside(str(p))
            if base is None or not args or not isinstance(args[0], str):
                return Unknown(f"{p}.{name}()", line)
            found = base.rglob(args[0]) if name == "rglob" else base.glob(args[0])
            return [PathValue(PurePosixPath(f)) for f in sorted(found)]
        if name == "relative_to" and args:
            try:
                return PathValue(p.relative_to(str(args[0])))
            except ValueError:
                return Unknown("relative_to", line)
        if name == "with_suffix" and args:
            return PathValue(p.with_suffix(str(args[0])))
        return Unknown(f"Path.{name}()", line)

    def _library(self, qual: str, args: list[Any], kwargs: dict[str, Any], line: int) -> Any:
        strs = [str(a) if isinstance(a, PathValue) else a for a in args]
        known = not any(is_unknown(a) for a in strs)
        short = qual.rsplit(".", 1)[-1]
        if qual.startswith("os.path.") and known and all(isinstance(a, str) for a in strs):
            if short in ("join", "dirname", "basename", "normpath", "splitext", "split", "isabs"):
                return getattr(posixpath, short)(*strs) if short != "splitext" else posixpath.splitext(strs[0])
            if short in ("abspath", "realpath"):
                return os.path.normpath(os.path.join(str(self.cwd), strs[0]))
            if short == "expanduser":
                return strs[0]
            if short in ("exists", "isdir", "isfile"):
                inside = self._inside(strs[0])
                if inside is None:
                    return Unknown(f"whether {strs[0]} exists", line)
                return {"exists": inside.exists, "isdir": inside.is_dir, "isfile": inside.is_file}[short]()
            if short == "relpath":
                return os.path.relpath(strs[0], strs[1] if len(strs) > 1 else str(self.cwd))
        if qual == "os.getcwd":
            return str(self.cwd)
        if qual == "os.listdir":
            inside = self._inside(strs[0] if strs and isinstance(strs[0], str) else ".")
            if inside is None or not inside.is_dir():
                return Unknown("os.listdir", line)
            return sorted(p.name for p in inside.iterdir())
        if qual in ("os.environ.get", "os.getenv"):
            default = strs[1] if len(strs) > 1 else kwargs.get("default")
            self.note(f"read environment variable {strs[0] if strs else '?'} as unset (default {default!r})", line)
            return default
        if qual in ("glob.glob", "glob.iglob", "glob.glob.glob") and known and strs and isinstance(strs[0], str):
            pattern = strs[0] if os.path.isabs(strs[0]) else os.path.join(str(self.cwd), strs[0])
            base = self._inside(pattern.split("*")[0].rsplit("/", 1)[0] or "/")
            if base is None:
                return Unknown(f"glob outside the tree ({strs[0]})", line)
            found = sorted(globmod.glob(pattern, recursive=bool(kwargs.get("recursive"))))
            return found if os.path.isabs(strs[0]) else [os.path.relpath(f, str(self.cwd)) for f in found]
        if qual in ("pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath") and known:
            return PathValue(PurePosixPath(*map(str, strs)) if strs else PurePosixPath("."))
        if qual in ("os.fspath", "builtins.str") and known and len(strs) == 1:
            return str(strs[0])
        if qual in ("setuptools.find_packages", "setuptools.find_namespace_packages"):
            return self._find_packages(strs[0] if strs else kwargs.get("where", "."), kwargs.get("exclude", ()))
        if qual.startswith("builtins."):
            return self._builtin(short, strs, kwargs, line)
        return Unknown(f"{qual}()", line)

    def _builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], line: int) -> Any:
        if name == "print":
            return None
        if any(is_unknown(a) for a in args):
            return Unknown(f"{name}() of an unknown value", line)
        try:
            if name in ("list", "tuple", "set", "frozenset", "sorted", "reversed"):
                items = self._iter(args[0]) if args else []
                if items is None:
                    return Unknown(name, line)
                if name == "sorted":
                    return sorted(items, reverse=bool(kwargs.get("reverse")))
                return list(reversed(items)) if name == "reversed" else (tuple(items) if name == "tuple" else items)
            if name == "len":
                return len(args[0])
            if name in ("int", "bool"):
                return {"int": int, "bool": bool}[name](*args)
            if name == "str":
                return str(args[0]) if args else ""
            if name == "range":
                return range(*args)
            if name == "enumerate":
                items = self._iter(args[0])
                return None if items is None else [(i, v) for i, v in enumerate(items)]
            if name == "zip":
                lists = [self._iter(a) for a in args]
                return (
                    Unknown("zip", line)
                    if any(x is None for x in lists)
                    else [tuple(t) for t in zip(*lists, strict=False)]
                )
            if name in ("any", "all", "min", "max"):
                items = self._iter(args[0]) if len(args) == 1 else args
                return (
                    Unknown(name, line) if items is None or any(is_unknown(i) for i in items) else REDUCERS[name](items)
                )
            if name == "dict":
                return dict(*args, **kwargs)
            if name in ("filter", "map") and isinstance(args[0], Function):
                items = self._iter(args[1])
                if items is None:
                    return Unknown(name, line)
                mapped = [self._invoke(args[0], [i], {}, line) for i in items]
                if name == "map":
                    return mapped
                return [i for i, keep in zip(items, mapped, strict=True) if self._truth(keep)]
        except (TypeError, ValueError, IndexError):
            pass
        return Unknown(f"{name}()", line)

    def _find_packages(self, where: Any, exclude: Any) -> Any:
        if not isinstance(where, str):
            return Unknown("find_packages(where=?)")
        base = self._inside(where)
        if base is None:
            return Unknown("find_packages outside the tree")
        patterns = [e for e in (exclude or ()) if isinstance(e, str)]
        found = []
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            if not rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            if not all((base / Path(*rel.parts[:i]) / "__init__.py").is_file() for i in range(1, len(rel.parts) + 1)):
                continue
            name = ".".join(rel.parts)
            if not any(fnmatch.fnmatch(name, p) for p in patterns):
                found.append(name)
        return found


def strings(value: Any) -> tuple[list[str], list[Unknown]]:
    """The strings in a (possibly nested, partly unknown) list value, and the unknown parts."""
    found: list[str] = []
    unknown: list[Unknown] = []

    def walk(v: Any) -> None:
        if isinstance(v, (str, PathValue)):
            found.append(str(v))
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
        elif is_unknown(v):
            unknown.append(v)
        elif v is not None:
            unknown.append(Unknown(f"a {type(v).__name__} value"))

    walk(value)
    return found, unknown


def parse(path: Path, root: Path) -> ast.Module:
    """Parse a file; a syntax error is the caller's to report (with file and line)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return ast.parse(text, filename=str(path))
