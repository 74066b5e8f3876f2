"""Find the catalogue's signatures in a log, root cause first.

Each signature reports its first matching line. A line belongs to one finding: specific
signatures take lines first, in catalogue order (the order a user meets failures), and are
listed in that order; then the cascade signatures (cascade_of) take what is left and are listed
after every specific finding, in log order, naming the findings they follow from.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from envbuilder.diagnose import prefilter
from envbuilder.diagnose.catalogue import NEAR_AFTER, NEAR_BEFORE, Catalogue, Signature
from envbuilder.errors import InputError

# A signature needs at most one line, but the lines it matches first may be taken by more
# specific ones; this many candidates per pattern is more than the catalogue can take away.
CANDIDATES_PER_PATTERN = 16
# A line that matches but lacks its `near` context is looked for again this many times.
NEAR_OCCURRENCES = 64


@dataclass(frozen=True)
class Finding:
    signature: Signature
    line_number: int
    line: str
    follows: tuple[str, ...] = ()  # the specific findings this cascade finding is a consequence of

    @property
    def id(self) -> str:
        return self.signature.id

    @property
    def cause(self) -> str:
        return self.signature.cause

    @property
    def fix(self) -> str:
        return self.signature.fix

    @property
    def command(self) -> str | None:
        return self.signature.command

    def to_json(self) -> dict[str, object]:
        s = self.signature
        return {
            "id": s.id,
            "category": s.category,
            "line": str(self.line_number),
            "text": self.line.strip()[:300],
            "cause": s.cause,
            "fix": s.fix,
            "command": s.command or "",
            "source": ", ".join(s.source),
            "follows": list(self.follows),
        }


@dataclass(frozen=True)
class _Probe:
    sig: int  # index into the catalogue
    regex: re.Pattern[str]
    literals: tuple[str, ...]  # one of these is on every line the regex matches: a cheap first test


@dataclass(frozen=True)
class _Plan:
    by_gate: dict[str, list[_Probe]]  # gate word -> patterns tested on the lines that hold it
    by_literal: dict[str, list[_Probe]]  # own literal -> patterns (any of a pattern's literals)


_PLANS: dict[int, tuple[Catalogue, _Plan]] = {}  # id(catalogue) -> (it, its plan); built once


def _plan(cat: Catalogue) -> _Plan:
    cached = _PLANS.get(id(cat))
    if cached is not None and cached[0] is cat:
        return cached[1]
    by_gate: dict[str, list[_Probe]] = defaultdict(list)
    by_literal: dict[str, list[_Probe]] = defaultdict(list)
    for index, sig in enumerate(cat.signatures):
        for text, regex in zip(sig.patterns, sig.regexes, strict=True):
            gates, literals = prefilter.plan(text)
            probe = _Probe(index, regex, tuple(literals))
            for needle in gates or literals:
                (by_gate if gates else by_literal)[needle].append(probe)
    plan = _Plan(dict(by_gate), dict(by_literal))
    _PLANS[id(cat)] = (cat, plan)
    return plan


def _near_ok(sig: Signature, text: str, start: int, end: int) -> bool:
    if sig.near_regex is None:
        return True
    lo = start
    for _ in range(NEAR_BEFORE):
        if lo <= 0:
            break
        lo = text.rfind("\n", 0, lo - 1) + 1
    hi = end
    for _ in range(NEAR_AFTER):
        nxt = text.find("\n", hi + 1)
        if nxt < 0:
            hi = len(text)
            break
        hi = nxt
    return sig.near_regex.search(text, lo, hi) is not None


def _look(hay: str, needle: str, probes: list[_Probe], found: dict[int, dict[str, None]]) -> None:
    """Run probes on every line of hay that holds needle, until each has its candidates."""
    left = {i: CANDIDATES_PER_PATTERN for i in range(len(probes))}
    pos = 0
    while left:
        at = hay.find(needle, pos)
        if at < 0:
            return
        start = hay.rfind("\n", 0, at) + 1
        end = hay.find("\n", at)
        if end < 0:
            end = len(hay)
        line = hay[start:end]
        for i in list(left):
            probe = probes[i]
            if any(lit in line for lit in probe.literals) and probe.regex.search(line):
                found[probe.sig][line] = None
                left[i] -= 1
                if not left[i]:
                    del left[i]
        pos = end + 1


def _distinct_lines(text: str) -> dict[str, int]:
    """Each line once, in first-seen order, with where it first starts. Big build logs repeat
    themselves (the same warning for every file that includes a header), so the passes below
    read a fraction of the text."""
    first: dict[str, int] = {}
    pos = 0
    for line in text.split("\n"):
        if line not in first:
            first[line] = pos
        pos += len(line) + 1
    return first


def _first_start(sig: Signature, text: str, line: str, first: int) -> int | None:
    """Where line first occurs in text as a whole line with sig's near context; None if nowhere."""
    if _near_ok(sig, text, first, first + len(line)):
        return first
    padded = "\n" + text  # padded[at] is the "\n" before a line that starts at text offset at
    needle = "\n" + line + "\n"
    pos = first + 1
    for _ in range(NEAR_OCCURRENCES):
        at = padded.find(needle, pos)
        if at < 0:
            return None
        if _near_ok(sig, text, at, at + len(line)):
            return at
        pos = at + 1
    return None


def _priority(cat: Catalogue) -> list[int]:
    """Specific signatures first, then cascades; each group in catalogue order."""
    sigs = cat.signatures
    return [i for i, s in enumerate(sigs) if not s.is_cascade] + [i for i, s in enumerate(sigs) if s.is_cascade]


def scan(text: str, cat: Catalogue | None = None) -> list[Finding]:
    """The signatures found in text, root causes first, each with its first line not taken by a
    more specific signature."""
    cat = cat or Catalogue.default()
    plan = _plan(cat)
    first = _distinct_lines(text)
    hay = "\n".join(first)
    found: dict[int, dict[str, None]] = defaultdict(dict)  # signature index -> matching lines
    for needle, probes in (*plan.by_gate.items(), *plan.by_literal.items()):
        _look(hay, needle, probes, found)
    hits: dict[int, set[int]] = {}
    for index, lines in found.items():
        sig = cat.signatures[index]
        starts = (_first_start(sig, text, line, first[line]) for line in lines)
        hits[index] = {s for s in starts if s is not None}
    taken: set[int] = set()
    chosen: list[tuple[int, int]] = []  # (signature index, line start)
    for index in _priority(cat):
        for start in sorted(hits.get(index, ())):
            if start not in taken:
                taken.add(start)
                chosen.append((index, start))
                break
    # root causes in catalogue order, then their consequences in the order the log shows them
    chosen.sort(key=lambda c: (cat.signatures[c[0]].is_cascade, c[1] if cat.signatures[c[0]].is_cascade else 0))
    numbers = _line_numbers(text, sorted(start for _, start in chosen))
    roots = {cat.signatures[i].id for i, _ in chosen if not cat.signatures[i].is_cascade}
    others = {cat.signatures[i].id for i, _ in chosen} - roots
    findings = []
    for index, start in chosen:
        sig = cat.signatures[index]
        end = text.find("\n", start)
        line = text[start : end if end >= 0 else len(text)].rstrip("\r")
        # the root causes it follows from; without one, the other consequences before it
        follows = tuple(c for c in sig.cascade_of if c in roots) or tuple(c for c in sig.cascade_of if c in others)
        findings.append(Finding(sig, numbers[start], line, follows))
    return findings


def _line_numbers(text: str, starts: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    line, pos = 1, 0
    for start in starts:
        line += text.count("\n", pos, start)
        pos = start
        out[start] = line
    return out


def matches(sig: Signature, text: str) -> bool:
    """Does any line of text match sig (with its near context)? Tests use it to find overlaps
    that the one-line-one-finding rule would hide."""
    pos = 0
    while pos <= len(text):
        end = text.find("\n", pos)
        if end < 0:
            end = len(text)
        line = text[pos:end]
        if any(r.search(line) for r in sig.regexes) and _near_ok(sig, text, pos, end):
            return True
        pos = end + 1
    return False


def scan_file(path: Path) -> list[Finding]:
    try:
        return scan(path.read_text(errors="replace"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
