"""The patch engine: include, cxx-standard, replace and diff patches on a source tree.

Every change is computed in memory first (each patch sees the result of the ones before it);
nothing is written unless every patch of the set succeeds. Writing is atomic per file and
journaled: originals go to <root>/.envbuilder-patches/orig/, the record
<root>/.envbuilder-patches.json says which patch produced which file (sha256 before/after), and a
failure or a kill part-way restores every touched file byte for byte. The record makes applying
idempotent ("already applied") and reverting safe (a file changed since is never overwritten).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.version import Version

from envbuilder.errors import PatchError
from envbuilder.fsutil import write_atomic
from envbuilder.host import compat
from envbuilder.recipe.model import Patch, PatchUse
from envbuilder.recipe.when import Facts

RECORD = ".envbuilder-patches.json"
BACKUPS = ".envbuilder-patches"
RECORD_VERSION = 1


@dataclass
class Change:
    path: str  # relative to the root, with '/'
    before: bytes
    after: bytes


# apply: would change files (compute) · applied: changed them (apply) · already applied · skipped: its condition is false
OutcomeStatus = Literal["apply", "applied", "already applied", "skipped"]


@dataclass
class Outcome:
    patch: str
    status: OutcomeStatus
    reason: str = ""
    changes: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "patch": self.patch,
            "status": self.status,
            "reason": self.reason,
            "files": [
                {"path": c.path, "sha256_before": _sha(c.before), "sha256_after": _sha(c.after)} for c in self.changes
            ],
        }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- reading targets ---------------------------------------------------------------------------


def targets(root: Path, use: PatchUse) -> list[Path]:
    """The files a patch use names, each inside root; a glob that matches nothing is an error."""
    real_root = root.resolve()
    found: list[Path] = []
    for pattern in use.targets:
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matches:
            raise PatchError(
                f"patch {use.name}: no file matches {pattern!r} under {root}",
                hint="the source differs from what the recipe expects (another commit or fork?), or the path is wrong",
            )
        for path in matches:
            if not path.resolve().is_relative_to(real_root):
                raise PatchError(f"patch {use.name}: {pattern!r} leads outside the source root ({path.resolve()})")
            if path not in found:
                found.append(path)
    return found


def _decode(data: bytes, name: str, rel: str) -> str:
    if b"\0" in data[:8192]:
        raise PatchError(f"patch {name}: {rel} is a binary file; patches only edit text")
    return data.decode("utf-8", "surrogateescape")  # keeps every byte of other encodings


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


# --- include ---------------------------------------------------------------------------------

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*[<"]([^>"]+)[>"]', re.MULTILINE)
DIRECTIVE_RE = re.compile(r"^#\s*(\w+)\s*(\S*)")


def includes(text: str) -> list[str]:
    return [m.group(1) for m in INCLUDE_RE.finditer(text)]


def insertion_index(lines: list[str]) -> int:
    """Where a new #include goes: after the last top-level #include of the file's head (the run
    of comments, blank lines and preprocessor lines before the first code), never inside an
    #if block, and after a header guard or #pragma once when there is no include yet."""
    in_comment = False
    depth = base = 0
    guard: str | None = None
    seen_directive = False
    last_include = last_head = None
    for i, line in enumerate(lines):
        s = line.strip()
        if in_comment:
            in_comment = "*/" not in s
            last_head = i
            continue
        if s.startswith("/*"):
            in_comment = "*/" not in s[2:]
            last_head = i
            continue
        if not s or s.startswith("//"):
            continue
        if not s.startswith("#"):
            break  # first line of code: the head ends here
        m = DIRECTIVE_RE.match(s)
        directive, arg = (m.group(1), m.group(2)) if m else ("", "")
        if directive in ("if", "ifdef", "ifndef"):
            if directive == "ifndef" and not seen_directive:
                guard = arg
            depth += 1
        elif directive == "endif":
            depth -= 1
        elif directive == "define" and guard and arg == guard and depth == 1 and base == 0:
            base = 1  # a header guard: its body is the top level
            last_head = i
        elif directive == "pragma" and "once" in s:
            last_head = i
        elif directive == "include" and depth == base:
            last_include = i
        seen_directive = True
    if last_include is not None:
        return last_include + 1
    return last_head + 1 if last_head is not None else 0


def _apply_include(text: str, patch: Patch) -> str | None:
    """The new text, or None when the header (or an equivalent) is already included."""
    assert patch.header
    if set(includes(text)) & {patch.header, *patch.satisfied_by}:
        return None
    nl = _newline(text)
    lines = text.splitlines(keepends=True)
    at = insertion_index(lines)
    if at > 0 and not lines[at - 1].endswith(("\n", "\r")):
        lines[at - 1] += nl
    lines.insert(at, f"#include <{patch.header}>{nl}")
    return "".join(lines)


# --- cxx-standard -------------------------------------------------------------------------------

STD_FLAG_RE = re.compile(
    r"(?P<prefix>--?std=|/std:)(?P<family>c|gnu)\+\+(?P<ver>98|03|0x|11|1y|14|1z|17|2a|20|2b|23|latest)"
)
CMAKE_STD_RE = re.compile(r"(?P<prefix>\bCMAKE_(?:CXX|CUDA)_STANDARD\s+)(?P<ver>\d+)")
STD_LEVEL = {
    "98": 3,
    "03": 3,
    "0x": 11,
    "11": 11,
    "1y": 14,
    "14": 14,
    "1z": 17,
    "17": 17,
    "2a": 20,
    "20": 20,
    "2b": 23,
    "23": 23,
    "latest": 99,
}


def blank_hash_comments(text: str) -> str:
    """Python/CMake '#' comments (outside quotes) replaced by spaces: same length, same offsets."""
    out = []
    for line in text.splitlines(keepends=True):
        quote = None
        for i, ch in enumerate(line):
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                body = line.rstrip("\r\n")
                line = line[:i] + " " * (len(body) - i) + line[len(body) :]
                break
        out.append(line)
    return "".join(out)


def torch_cxx_standard(torch_dir: Path) -> str | None:
    """The C++ standard an installed torch's headers demand, read from ATen/ATen.h's #error."""
    try:
        text = (torch_dir / "include" / "ATen" / "ATen.h").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"#error C\+\+(\d+) or later compatible compiler is required", text)
    return f"c++{m.group(1)}" if m else None


def _apply_cxx(text: str, patch: Patch, rel: str, target: str) -> str | None:
    level = STD_LEVEL[target.removeprefix("c++")]
    code = blank_hash_comments(text) if rel.endswith((".py", ".cmake", "CMakeLists.txt")) else text
    found = [(m, STD_LEVEL[m.group("ver")]) for m in STD_FLAG_RE.finditer(code)]
    found += [(m, int(m.group("ver"))) for m in CMAKE_STD_RE.finditer(code)]
    if not found:
        raise PatchError(
            f"patch {patch.name}: {rel}: expected a forced C++ standard (-std=c++14 or CMAKE_CXX_STANDARD 14), found none",
            hint="the file changed from what the recipe expects; check the pinned commit",
        )
    if all(lvl >= level for _, lvl in found):
        return None
    number = target.removeprefix("c++")
    edits = []  # (start, end, replacement) in the original text, found in its code part only
    for m, lvl in found:
        if lvl >= level:
            continue
        family = m.groupdict().get("family")
        new = f"{m.group('prefix')}{family}++{number}" if family else f"{m.group('prefix')}{number}"
        edits.append((m.start(), m.end(), new))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


# --- replace ------------------------------------------------------------------------------------


def _apply_replace(text: str, patch: Patch, rel: str) -> str | None:
    assert patch.find is not None and patch.replace is not None
    expected = dict(patch.counts).get(rel, patch.count)
    check = patch.check if patch.check is not None else (patch.replace if not patch.regex and patch.replace else None)
    if patch.regex:
        pattern = re.compile(patch.find, re.MULTILINE)

        # a match that already holds the check text is fixed upstream: torch.load(p, weights_only=False)
        # must not become torch.load(p, weights_only=False, weights_only=False)
        def fixed(m: re.Match[str]) -> bool:
            return bool(patch.check) and str(patch.check) in m.group(0)

        starts = [m.start() for m in pattern.finditer(text) if not fixed(m)]
    else:
        if check and check in text and patch.find in patch.replace:
            return None  # an insertion keeps its anchor: found again once applied, it must not go in twice
        starts, at = [], text.find(patch.find)
        while at >= 0:
            starts.append(at)
            at = text.find(patch.find, at + max(1, len(patch.find)))
    if len(starts) == expected:
        if patch.regex:
            replacement = patch.replace
            return pattern.sub(lambda m: m.group(0) if fixed(m) else m.expand(replacement), text)
        return text.replace(patch.find, patch.replace, expected)
    if not starts and check and check in text:
        return None
    lines = ", ".join(str(text.count("\n", 0, s) + 1) for s in starts[:10])
    raise PatchError(
        f"patch {patch.name}: {rel}: expected {expected} match(es) of {patch.find!r}, found {len(starts)}"
        + (f" (lines {lines})" if starts else ""),
        hint="the file changed from what the recipe expects (drifted); update the patch or the pinned commit",
    )


# --- diff ---------------------------------------------------------------------------------------


@dataclass
class Hunk:
    old_start: int
    old: list[str]
    new: list[str]


def parse_diff(text: str, strip: int, name: str) -> dict[str, list[Hunk]]:
    """A unified diff -> {relative path: hunks}. Only edits of existing files are supported."""
    files: dict[str, list[Hunk]] = {}
    current: list[Hunk] | None = None
    hunk: Hunk | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            target = lines[i + 1][4:].split("\t")[0].strip()
            if target == "/dev/null" or line[4:].split("\t")[0].strip() == "/dev/null":
                raise PatchError(
                    f"patch {name}: the diff creates or deletes a file ({target}); only edits are supported"
                )
            parts = target.split("/")
            if len(parts) <= strip:
                raise PatchError(f"patch {name}: strip {strip} removes the whole path {target!r}")
            current = files.setdefault("/".join(parts[strip:]), [])
            hunk = None
            i += 2
            continue
        m = re.match(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", line)
        if m and current is not None:
            hunk = Hunk(int(m.group(1)), [], [])
            current.append(hunk)
        elif hunk is not None and (line[:1] in (" ", "-", "+") or line == ""):
            body = line[1:]
            if line[:1] in (" ", ""):
                hunk.old.append(body)
                hunk.new.append(body)
            elif line[0] == "-":
                hunk.old.append(body)
            else:
                hunk.new.append(body)
        i += 1
    if not files:
        raise PatchError(f"patch {name}: the diff names no file")
    return files


def _find_block(lines: list[str], block: list[str], near: int) -> int | None:
    """Index where block matches lines exactly, the nearest to `near` (patch's offset search)."""
    if not block:
        return min(max(near, 0), len(lines))
    candidates = range(len(lines) - len(block) + 1)
    hits = [i for i in candidates if lines[i : i + len(block)] == block]
    return min(hits, key=lambda i: abs(i - near)) if hits else None


def _apply_hunks(text: str, hunks: list[Hunk], name: str, rel: str) -> str | None:
    nl = _newline(text)
    ends_with_newline = text.endswith(("\n", "\r"))
    lines = text.splitlines()
    forward, offset, failed = list(lines), 0, None
    for number, h in enumerate(hunks, 1):
        at = _find_block(forward, h.old, h.old_start - 1 + offset)
        if at is None:
            failed = number
            break
        forward[at : at + len(h.old)] = h.new
        offset += len(h.new) - len(h.old)
    if failed is None:
        return nl.join(forward) + (nl if ends_with_newline else "")
    # not applicable forwards: already applied if every hunk applies in reverse
    backward = list(lines)
    if all(_find_block(backward, h.new, h.old_start - 1) is not None for h in hunks):
        return None
    raise PatchError(
        f"patch {name}: {rel}: hunk {failed} does not apply (context drifted)",
        hint="the file differs from what the diff was made against; regenerate the diff at the pinned commit",
    )


# --- computing and applying a patch set ---------------------------------------------------------


@dataclass
class PatchContext:
    """What conditions are evaluated against, and the C++ standard the torch in use needs."""

    facts: Facts
    cxx_standard: str | None = None  # for cxx-standard patches with standard: auto

    def describe_unknown(self) -> str:
        return ", ".join(k for k, v in self.facts.items() if v is None)

    def facts_json(self) -> dict[str, Any]:
        return {
            k: ([str(x) for x in v] if isinstance(v, list) else str(v)) if v is not None else None
            for k, v in self.facts.items()
        }


def on_tree(
    source: Path, sets: list[tuple[str, tuple[PatchUse, ...]]], context: PatchContext, mode: str
) -> tuple[list[dict[str, Any]], str]:
    """`envbuilder patch check|apply|revert` on a tree of the user's: per set (root relative to
    source), what each patch did, and the unified diff. Every set is checked before any is written."""
    if mode == "revert":
        return [{"root": rel, "reverted": revert(source / rel)} for rel, _ in sets], ""
    results: list[dict[str, Any]] = []
    diff_text = ""
    planned = [(rel, uses, compute(source / rel, uses, context)) for rel, uses in sets]
    for rel, uses, outcomes in planned:
        if mode == "apply":
            outcomes = apply(source / rel, uses, context)
        diff_text += unified_diff(outcomes, rel)
        results += [{"root": rel, **o.to_json()} for o in outcomes]
    return results, diff_text


def context_here(torch: str | None, cuda: str | None, gcc: str | None, archs: str | None) -> PatchContext:
    """The context outside a build (`envbuilder patch`): the given versions, else this host's and
    the torch this Python can import (found without importing it: that costs seconds)."""
    import importlib.util
    import sys

    from envbuilder.host import discover
    from envbuilder.host.compat import parse_arch_list
    from envbuilder.recipe import when

    host = discover(gpus=False)
    torch_dir = None
    if torch is None:
        found = importlib.util.find_spec("torch")
        torch_dir = Path(found.origin).parent if found and found.origin else None
    facts = when.facts(
        cuda=Version(cuda) if cuda else (host.toolkits[0].version if host.toolkits else None),
        gcc=Version(gcc) if gcc else (host.compilers[0].version if host.compilers else None),
        python=Version("%d.%d.%d" % sys.version_info[:3]),
        torch=Version(torch) if torch else (torch_version_of(torch_dir) if torch_dir else None),
        archs=[a.version for a in parse_arch_list(archs)] if archs else None,
    )
    return context_for(facts, torch_dir)


def context_for(facts: Facts, torch_dir: Path | None) -> PatchContext:
    """The context for a tree built with the torch installed at torch_dir (None: not known):
    the C++ standard comes from torch's own headers, else from its version."""
    torch = facts.get("torch")
    standard = torch_cxx_standard(torch_dir) if torch_dir else None
    if standard is None and isinstance(torch, Version):
        standard = compat.cxx_standard(torch)
    return PatchContext(facts=facts, cxx_standard=standard)


def compute(root: Path, uses: tuple[PatchUse, ...] | list[PatchUse], context: PatchContext) -> list[Outcome]:
    """What applying `uses` to root would do. Reads files; writes nothing."""
    working: dict[str, str] = {}  # rel -> current text, as earlier patches left it
    original: dict[str, bytes] = {}
    outcomes = []
    for use in uses:
        patch = use.patch
        condition = use.condition
        decided = condition.evaluate(context.facts) if condition else True
        if decided is False:
            outcomes.append(Outcome(patch.name, "skipped", f"when {condition} is false here"))
            continue
        if patch.kind == "diff":
            assert patch.diff is not None
            per_file = parse_diff(patch.diff.read_text(errors="surrogateescape"), patch.strip, patch.name)
            paths = []
            for rel in per_file:
                path = root / rel
                if not path.is_file():
                    raise PatchError(f"patch {patch.name}: the diff edits {rel}, which is not under {root}")
                if not path.resolve().is_relative_to(root.resolve()):
                    raise PatchError(f"patch {patch.name}: {rel} leads outside the source root")
                paths.append(path)
        else:
            paths = targets(root, use)
        changes = []
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if rel not in working:
                original[rel] = path.read_bytes()
                working[rel] = _decode(original[rel], patch.name, rel)
            text = working[rel]
            if patch.kind == "include":
                new = _apply_include(text, patch)
            elif patch.kind == "cxx-standard":
                target = patch.standard if patch.standard != "auto" else context.cxx_standard
                if target is None:
                    raise PatchError(
                        f"patch {patch.name}: cannot tell which C++ standard torch needs (no torch found)",
                        hint="install torch in the env first, or pass --torch VERSION",
                    )
                new = _apply_cxx(text, patch, rel, target)
            elif patch.kind == "replace":
                new = _apply_replace(text, patch, rel)
            else:
                new = _apply_hunks(text, per_file[rel], patch.name, rel)
            if new is not None and new != text:
                changes.append(Change(rel, _encode(text), _encode(new)))
                working[rel] = new
        status: OutcomeStatus = "apply" if changes else "already applied"
        reason = "" if decided else f"applied although {context.describe_unknown()} is not known yet"
        outcomes.append(Outcome(patch.name, status, reason, changes))
    return outcomes


def unified_diff(outcomes: list[Outcome], prefix: str = "") -> str:
    """The changes as a unified diff; prefix places the root inside a larger tree (gridencoder/)."""
    prefix = "" if prefix in ("", ".") else prefix.rstrip("/") + "/"
    out: list[str] = []
    for o in outcomes:
        for c in o.changes:
            before = c.before.decode("utf-8", "replace").splitlines(keepends=True)
            after = c.after.decode("utf-8", "replace").splitlines(keepends=True)
            out.extend(difflib.unified_diff(before, after, f"a/{prefix}{c.path}", f"b/{prefix}{c.path}"))
    return "".join(out)


def read_record(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / RECORD).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PatchError(
            f"{root / RECORD} is unreadable ({exc})", hint=f"restore the sources, or delete {RECORD} and {BACKUPS}/"
        ) from None
    return data if isinstance(data, dict) and data.get("version") == RECORD_VERSION else None


def _save_record(root: Path, record: dict[str, Any]) -> None:
    write_atomic(root / RECORD, (json.dumps(record, indent=1) + "\n").encode())


def _ignore_in_git(root: Path) -> None:
    """Keep the record and backups out of `git status` in a checkout."""
    exclude = root / ".git" / "info" / "exclude"
    if not (root / ".git").is_dir():
        return
    text = exclude.read_text() if exclude.exists() else ""
    lines = [f"/{RECORD}", f"/{BACKUPS}/"]
    missing = [line for line in lines if line not in text.splitlines()]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(missing) + "\n")


def patch_set_id(uses: tuple[PatchUse, ...] | list[PatchUse], outcomes: list[Outcome]) -> list[dict[str, str]]:
    return [{"name": u.name, "sha256": u.patch.sha256, "status": o.status} for u, o in zip(uses, outcomes, strict=True)]


def apply(root: Path, uses: tuple[PatchUse, ...] | list[PatchUse], context: PatchContext) -> list[Outcome]:
    """Bring root to "pristine + exactly these patches": a previous different patch set is
    reverted first; the same set already in place is left alone."""
    record = read_record(root)
    if record is not None:
        outcomes_now = _recorded_state(root, record)
        wanted = [{"name": u.name, "sha256": u.patch.sha256} for u in uses]
        recorded = [{"name": p["name"], "sha256": p["sha256"]} for p in record["patches"]]
        if record.get("state") == "applied" and outcomes_now and recorded == wanted:
            return [Outcome(p["name"], "already applied", "recorded in " + RECORD) for p in record["patches"]]
        revert(root)
    outcomes = compute(root, uses, context)
    files: dict[str, Change] = {}
    for o in outcomes:
        for c in o.changes:
            if c.path in files:
                files[c.path] = Change(c.path, files[c.path].before, c.after)
            else:
                files[c.path] = Change(c.path, c.before, c.after)
    if not files:
        return outcomes  # nothing to change: leave no record behind
    record = {
        "version": RECORD_VERSION,
        "state": "applying",
        "patches": [{**p, "outcome": o.to_json()} for p, o in zip(patch_set_id(uses, outcomes), outcomes, strict=True)],
        "files": {rel: {"before": _sha(c.before), "after": _sha(c.after)} for rel, c in files.items()},
    }
    for rel, c in files.items():  # originals first: a kill from here on can always be undone
        backup = root / BACKUPS / "orig" / rel
        backup.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(backup, c.before)
    _save_record(root, record)
    written: list[Change] = []
    try:
        for c in files.values():
            write_atomic(root / c.path, c.after)
            written.append(c)
    except BaseException:
        for c in written:
            write_atomic(root / c.path, c.before)
        shutil.rmtree(root / BACKUPS, ignore_errors=True)
        (root / RECORD).unlink(missing_ok=True)
        raise
    record["state"] = "applied"
    _save_record(root, record)
    _ignore_in_git(root)
    for o in outcomes:
        if o.status == "apply":
            o.status = "applied"
    return outcomes


def _recorded_state(root: Path, record: dict[str, Any]) -> bool:
    """True when every recorded file still holds exactly what the patches wrote."""
    for rel, sums in record.get("files", {}).items():
        path = root / rel
        if not path.is_file() or _sha(path.read_bytes()) != sums["after"]:
            return False
    return True


def revert(root: Path) -> list[str]:
    """Restore every file the recorded patches changed; returns their paths. A file edited since
    it was patched is an error, and then nothing is touched."""
    record = read_record(root)
    if record is None:
        return []
    plan = []
    for rel, sums in record.get("files", {}).items():
        path = root / rel
        current = _sha(path.read_bytes()) if path.is_file() else None
        if current == sums["before"]:
            continue
        if current != sums["after"]:
            raise PatchError(
                f"{rel} changed after envbuilder patched it; not reverting, so your edits are kept",
                hint=f"restore it by hand from {root / BACKUPS / 'orig' / rel}, then run --revert again",
            )
        backup = root / BACKUPS / "orig" / rel
        data = backup.read_bytes() if backup.is_file() else None
        if data is None or _sha(data) != sums["before"]:
            raise PatchError(
                f"the backup of {rel} is missing or damaged; cannot revert it", hint="re-create the source tree"
            )
        plan.append((path, data, rel))
    done: list[tuple[Path, bytes]] = []
    try:
        for path, data, _ in plan:
            done.append((path, path.read_bytes()))
            write_atomic(path, data)
    except BaseException:
        for path, data in done:
            write_atomic(path, data)
        raise
    shutil.rmtree(root / BACKUPS, ignore_errors=True)
    (root / RECORD).unlink(missing_ok=True)
    return [rel for _, _, rel in plan]


def torch_version_of(torch_dir: Path) -> Version | None:
    """An installed torch's version, read from torch/version.py without importing torch."""
    try:
        text = (torch_dir / "version.py").read_text()
    except OSError:
        return None
    m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return Version(m.group(1)) if m else None
