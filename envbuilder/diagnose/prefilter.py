"""Which literal text every match of a regex must contain, so the scanner can look for that text
with str.find (fast) and run the regex only on the lines that hold it.

A 50 MB log costs about 20 ms per str.find pass and seconds per regex or alternation pass, so
patterns share a few gate words (GATES) and only the rest pay a pass of their own.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

try:  # Python 3.11+ moved the regex parser; its tree is the only exact account of a pattern
    import re._constants as _c  # type: ignore[import-not-found,unused-ignore]
    import re._parser as _parser  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Python 3.10
    import sre_constants as _c  # type: ignore[no-redef,unused-ignore]
    import sre_parse as _parser  # type: ignore[no-redef,unused-ignore]

# Substrings shared by many signatures' lines and rare in clean build logs. A pattern whose every
# match contains one of them is tested only on the lines that hold it (one pass per gate).
GATES = (
    "rror",  # error, Error, ModuleNotFoundError, #error
    "ERROR",
    "No ",
    "not ",
    "ailed",  # failed, Failed
    "annot",  # cannot, Cannot
    "Killed",
    "ninja",
    "ndefined",
    "nsupported",
    "nvalid",
    "ould not",
    "does not",
    "fatal",
    "Because",
    "symbol",
    "memory",
    "allocate",
    "requires",
    "too old",
    "insufficient",
    "is not set",
    "Found ",
    "removed",
    "ancdata",
    "Weights only",
    "has no attribute",
    "has no member",
    "unable to",
    "compatible compiler",
    "exception specifi",
    "undeclared",
    "unknown type name",
)
MIN_LITERAL = 3


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Seq:
    items: tuple[Lit | Seq | Alt, ...]


@dataclass(frozen=True)
class Alt:
    branches: tuple[Seq, ...]


class NoLiteral(ValueError):
    """The pattern can match without any literal text the prefilter could look for."""


def _tree(parsed: Any) -> Seq:  # a re._parser.SubPattern (private, untyped)
    items: list[Lit | Seq | Alt] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            items.append(Lit("".join(run)))
            run.clear()

    for op, av in parsed:
        if op is _c.LITERAL:
            run.append(chr(av))
        elif op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue  # zero-width: the text on both sides is still adjacent
        elif op is _c.SUBPATTERN:
            flush()
            add_flags = av[1]
            if not add_flags & _c.SRE_FLAG_IGNORECASE:
                items.append(_tree(av[-1]))
        elif op is _c.BRANCH:
            flush()
            items.append(Alt(tuple(_tree(b) for b in av[1])))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or op.name == "POSSESSIVE_REPEAT":
            flush()
            if av[0] >= 1:
                items.append(_tree(av[2]))
        elif op.name == "ATOMIC_GROUP":
            flush()
            items.append(_tree(av))
        else:  # classes, any-char, backreferences: nothing literal to rely on
            flush()
    flush()
    return Seq(tuple(items))


def _gates(node: Lit | Seq | Alt) -> frozenset[str] | None:
    """Gate words of which every match of node contains at least one (None: no such set)."""
    if isinstance(node, Lit):
        return next((frozenset({g}) for g in GATES if g in node.text), None)
    if isinstance(node, Alt):
        options = [_gates(b) for b in node.branches]
        if any(o is None for o in options):
            return None
        return frozenset().union(*options)  # type: ignore[arg-type]
    found = [o for o in (_gates(item) for item in node.items) if o is not None]
    return min(found, key=lambda o: (len(o), min(GATES.index(g) for g in o))) if found else None


def _best(node: Lit | Seq | Alt) -> frozenset[str] | None:
    """Strings of which every match contains at least one, longest shortest member first."""
    if isinstance(node, Lit):
        return frozenset({node.text})
    if isinstance(node, Alt):
        options = [_best(b) for b in node.branches]
        if any(o is None for o in options):
            return None
        return frozenset().union(*options)  # type: ignore[arg-type]
    found = [o for o in (_best(item) for item in node.items) if o is not None]
    if not found:
        return None
    return max(found, key=lambda o: (min(len(s) for s in o), -len(o)))


@functools.lru_cache(maxsize=1024)
def plan(pattern: str) -> tuple[frozenset[str], frozenset[str]]:
    """(gates, literals): every match contains one of the gate words (when there are any), and
    one of the literals (always; used to skip the regex on a line, or as its own pass)."""
    compiled = re.compile(pattern)
    if compiled.flags & re.IGNORECASE:
        raise NoLiteral("(?i) hides the literal text the scanner looks for; write the case variants out")
    tree = _tree(_parser.parse(pattern))
    best = _best(tree)
    if best is None or min(len(s) for s in best) < MIN_LITERAL:
        raise NoLiteral(f"every match must contain a literal of {MIN_LITERAL}+ characters (the scanner looks for it)")
    return _gates(tree) or frozenset(), best
