"""Extensions that torch compiles at run time: torch.utils.cpp_extension.load / load_inline calls
(a backend.py that builds its kernels at first import), read with `ast` and the static evaluator."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from envbuilder.new import pyeval
from envbuilder.new.setup_py import syntax_error

LOADERS = frozenset({"torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline"})


@dataclass(frozen=True)
class JitBackend:
    file: str  # the .py that calls load(), relative to the root
    line: int
    name: str | None  # load(name=...): the module torch builds
    sources: tuple[str, ...]  # relative to the root
    flags: tuple[str, ...]  # extra_cflags + extra_cuda_cflags
    inline: bool
    unknown: tuple[str, ...]
    guesses: tuple[str, ...]


def find(path: Path, root: Path) -> list[JitBackend]:
    """The load() calls in one file (which must parse: it is code the method runs)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if "cpp_extension" not in text:
        return []
    try:
        tree = pyeval.parse(path, root)
    except SyntaxError as exc:
        raise syntax_error(path, root, exc) from None
    evaluator = pyeval.Evaluator(path, root, LOADERS)
    with contextlib.suppress(RecursionError):
        evaluator.run_module(tree)
    root_r = root.resolve()
    out = []
    for call in evaluator.calls:
        name = call.arg("name", 0)
        sources, missing = pyeval.strings(call.arg("sources", 1, []))
        unknown = [f"sources: {u.why}" for u in missing]
        rel_sources = []
        for s in sources:
            full = (path.parent / s).resolve()
            rel_sources.append(full.relative_to(root_r).as_posix() if full.is_relative_to(root_r) else s)
        flags: list[str] = []
        for key in ("extra_cflags", "extra_cuda_cflags"):
            found, missing = pyeval.strings(call.arg(key, None, []))
            flags += found
            unknown += [f"{key}: {u.why}" for u in missing]
        out.append(
            JitBackend(
                file=path.resolve().relative_to(root_r).as_posix(),
                line=call.line,
                name=name if isinstance(name, str) else None,
                sources=tuple(rel_sources),
                flags=tuple(flags),
                inline=call.name.endswith("load_inline"),
                unknown=tuple(unknown),
                guesses=tuple(evaluator.guesses),
            )
        )
    return out
