"""The signature catalogue: signatures.yaml -> typed, validated, compiled once.

Loaded with the recipe loader's Node rules, so every mistake in the file is an error naming
file:line and key: unknown keys, bad regexes, an unknown cascade_of, an example whose `from` is
not one of the signature's sources, categories out of order.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envbuilder.recipe.load import Node

CATALOGUE_FILE = Path(__file__).with_name("signatures.yaml")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SOURCE_RE = re.compile(r"^([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+#\d+|envbuilder: \S.*)$")
# `near` looks this many lines before and after the matched one: a Python traceback or a pip/uv
# error block puts the telling context (the build backend, the renderer) within these.
NEAR_BEFORE = 40
NEAR_AFTER = 8


@dataclass(frozen=True)
class Example:
    source: str  # the thread (or envbuilder observation) the text came from
    text: str
    line: int  # where it is written in the catalogue file


@dataclass(frozen=True)
class Signature:
    id: str
    category: str
    patterns: tuple[str, ...]  # any of them, per line; empty: never seen in logs (patches name it)
    cause: str
    fix: str
    command: str | None = None
    source: tuple[str, ...] = ()
    near: str | None = None
    cascade_of: tuple[str, ...] = ()  # resolved to ids
    examples: tuple[Example, ...] = ()
    line: int = 0
    regexes: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    near_regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @property
    def pattern(self) -> str | None:
        """All patterns as one regex (None: not matched in logs)."""
        if not self.patterns:
            return None
        return self.patterns[0] if len(self.patterns) == 1 else "|".join(f"(?:{p})" for p in self.patterns)

    @property
    def is_cascade(self) -> bool:
        return bool(self.cascade_of)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "category": self.category,
            "patterns": list(self.patterns),
            "near": self.near,
            "cascade_of": list(self.cascade_of),
            "cause": self.cause,
            "fix": self.fix,
            "command": self.command,
            "source": list(self.source),
            "examples": [{"from": e.source, "text": e.text} for e in self.examples],
        }


@dataclass(frozen=True)
class Catalogue:
    file: Path
    categories: tuple[str, ...]
    signatures: tuple[Signature, ...]

    def get(self, sid: str) -> Signature:
        for sig in self.signatures:
            if sig.id == sid:
                return sig
        raise KeyError(sid)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.signatures)

    @staticmethod
    def default() -> Catalogue:
        """The shipped catalogue, loaded and compiled on first use (the CLI starts without it)."""
        return _shipped()


def _close(word: str, choices: list[str] | tuple[str, ...], cutoff: float = 0.6) -> list[str]:
    import difflib  # only on an error: importing it costs 25 ms

    return difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)


def _regex(node: Node) -> tuple[str, re.Pattern[str]]:
    text = node.string(expected="a regular expression")
    if "\n" in text:
        raise node.error("a pattern matches one line; it must not contain a newline")
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise node.error(f"not a valid regex: {exc}") from None
    return text, compiled


def _patterns(node: Node) -> list[tuple[str, re.Pattern[str]]]:
    nodes = node.items() if isinstance(node.value, list) else [node]
    if not nodes:
        raise node.error("expected a regex or a list of regexes, got an empty list")
    out = []
    for item in nodes:
        text, compiled = _regex(item)
        from envbuilder.diagnose import prefilter  # here: patch files import this module for the ids only

        try:
            prefilter.plan(text)
        except prefilter.NoLiteral as exc:
            raise item.error(f"pattern {text!r}: {exc}") from None
        out.append((text, compiled))
    return out


def _sources(node: Node) -> tuple[str, ...]:
    items = node.items() if isinstance(node.value, list) else [node]
    out = []
    for item in items:
        text = item.string(expected="a thread owner/repo#N or 'envbuilder: what was seen'")
        if not SOURCE_RE.match(text):
            raise item.error(
                f"{text!r} is not a source",
                hint="write owner/repo#N (the thread), or 'envbuilder: ...' for its own runs",
            )
        out.append(text)
    if not out:
        raise node.error("expected at least one source")
    return tuple(out)


def _examples(node: Node, sources: tuple[str, ...]) -> tuple[Example, ...]:
    out = []
    for item in node.items():
        f = item.fields(required=("from", "text"))
        origin = f["from"].string()
        if origin not in sources:
            close = _close(origin, sources, cutoff=0.5)
            raise f["from"].error(
                f"{origin!r} is not one of this signature's sources",
                hint=f"did you mean {close[0]!r}?" if close else "add the thread to `source:` first",
            )
        out.append(Example(origin, f["text"].string(expected="the text a user pasted"), item.line or 0))
    return tuple(out)


def _signature(item: Node, categories: tuple[str, ...]) -> tuple[Signature, list[tuple[str, Node]]]:
    f = item.fields(
        required=("id", "category", "cause", "fix", "source"),
        optional=("pattern", "near", "cascade_of", "command", "examples"),
    )
    sid = f["id"].string(pattern=ID_RE, expected="a lower-case id (letters, digits, '-')")
    category = f["category"].string()
    if category not in categories:
        close = _close(category, categories)
        raise f["category"].error(
            f"unknown category {category!r}",
            hint=f"did you mean '{close[0]}'?" if close else f"categories: {', '.join(categories)}",
        )
    patterns = _patterns(f["pattern"]) if "pattern" in f else []
    near = _regex(f["near"]) if "near" in f else None
    command = f["command"].string() if "command" in f else None
    if command is not None and not command.startswith("envbuilder "):
        raise f["command"].error(f"{command!r} is not an envbuilder command", hint="start it with 'envbuilder '")
    sources = _sources(f["source"])
    examples = _examples(f["examples"], sources) if "examples" in f else ()
    if patterns and not examples:
        raise item.error(f"signature {sid!r} has a pattern but no examples", hint="add a line from its source thread")
    if examples and not patterns:
        raise f["examples"].error(f"signature {sid!r} has examples but no pattern to match them")
    cascade = [(n.string(), n) for n in f["cascade_of"].items()] if "cascade_of" in f else []
    sig = Signature(
        id=sid,
        category=category,
        patterns=tuple(p for p, _ in patterns),
        cause=f["cause"].string(),
        fix=f["fix"].string(),
        command=command,
        source=sources,
        near=near[0] if near else None,
        examples=examples,
        line=item.line or 0,
        regexes=tuple(c for _, c in patterns),
        near_regex=near[1] if near else None,
    )
    return sig, cascade


def _resolve_cascades(
    sigs: list[Signature], cascades: list[list[tuple[str, Node]]], categories: tuple[str, ...]
) -> list[Signature]:
    ids = [s.id for s in sigs]
    out = []
    for sig, refs in zip(sigs, cascades, strict=True):
        resolved: list[str] = []
        for ref, node in refs:
            if ref == sig.id:
                raise node.error(f"{sig.id!r} cannot be a cascade of itself")
            if ref in categories:
                resolved += [s.id for s in sigs if s.category == ref and s.id != sig.id]
            elif ref in ids:
                resolved.append(ref)
            else:
                close = _close(ref, ids + list(categories))
                raise node.error(
                    f"unknown signature or category {ref!r}",
                    hint=f"did you mean '{close[0]}'?" if close else "name a signature id or a category",
                )
        out.append(Signature(**{**sig.__dict__, "cascade_of": tuple(dict.fromkeys(resolved))}))
    return out


def load(path: Path = CATALOGUE_FILE) -> Catalogue:
    """Read and check a catalogue file. Errors are RecipeError with file:line."""
    from envbuilder.recipe import yamlfile
    from envbuilder.recipe.load import Node

    data, _ = yamlfile.load(path, fast=True)
    root = Node(data, path, "", getattr(data, "line", 1))
    f = root.fields(required=("categories", "signatures"))
    categories = f["categories"].strings()
    if len(set(categories)) != len(categories):
        raise f["categories"].error("categories must be distinct")
    sigs: list[Signature] = []
    cascades: list[list[tuple[str, Node]]] = []
    first_line: dict[str, int] = {}
    for item in f["signatures"].items():
        sig, cascade = _signature(item, categories)
        if sig.id in first_line:
            raise item.error(f"duplicate signature id {sig.id!r} (first written on line {first_line[sig.id]})")
        if sigs and categories.index(sig.category) < categories.index(sigs[-1].category):
            raise item.error(
                f"{sig.id!r} ({sig.category}) comes after {sigs[-1].id!r} ({sigs[-1].category})",
                hint=f"keep the file in the categories' order: {', '.join(categories)}",
            )
        first_line[sig.id] = sig.line
        sigs.append(sig)
        cascades.append(cascade)
    return Catalogue(path, categories, tuple(_resolve_cascades(sigs, cascades, categories)))


@functools.lru_cache(maxsize=1)
def _shipped() -> Catalogue:
    return load(CATALOGUE_FILE)


_ID_LINE = re.compile(r"^- id: ([a-z0-9][a-z0-9-]*)\s*$", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def signature_ids() -> frozenset[str]:
    """The shipped ids, read without parsing the YAML: patch files check `fixes:` against these
    while a plan is made, which must stay fast. A test keeps this equal to catalogue().ids."""
    return frozenset(_ID_LINE.findall(CATALOGUE_FILE.read_text(encoding="utf-8")))
