"""pylock.<name>.toml on disk: read (any malformed file raises LockFileError naming the file, the
key path and the line), write (deterministic TOML, written to a temporary name and renamed).

Every lock is checked twice: by `packaging.pylock` (the PEP 751 rules pip itself uses) and by
envbuilder's model (one file per package, sha256 and size present, the [tool.envbuilder] schema).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from envbuilder.lock.errors import LockFileError
from envbuilder.lock.model import Lock

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

HEADER = (
    "# PEP 751 lock written by envbuilder: pip >= 26.1 (`pip install -r`) and uv (`uv pip install -r`)\n"
    "# read it; [tool.envbuilder] is envbuilder's own record and changes nothing they install.\n"
    "# Do not edit: make it again with `envbuilder lock`.\n"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def lock_filename(recipe: str, variant: str | None = None) -> str:
    """pylock.<recipe>.toml, or pylock.<recipe>-<variant>.toml for one of several variants
    (PEP 751 allows exactly one dot-free part between `pylock.` and `.toml`)."""
    stem = f"{recipe}-{variant}" if variant else recipe
    stem = stem.replace(".", "_")
    if not _NAME.fullmatch(stem):
        raise LockFileError(f"{stem!r} cannot name a lock file (pylock.<name>.toml)", file=None)
    return f"pylock.{stem}.toml"


def loads(text: str, *, file: Path | str | None = None) -> Lock:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _decode_error_line(str(exc))
        raise LockFileError(f"not valid TOML: {_strip_position(str(exc))}", file=file, line=line) from None
    except (ValueError, RecursionError) as exc:  # tomllib raises these for pathological input
        raise LockFileError(f"not valid TOML: {exc}", file=file) from None
    try:
        _check_pep751(data)
        return Lock.from_toml(data)
    except LockFileError as exc:
        raise LockFileError(
            _message_of(exc), file=file, key=exc.key, line=_line_of(text, exc.key), hint=exc.hint
        ) from None


def read_lock(path: Path) -> Lock:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LockFileError(f"cannot read the lock: {exc.strerror}", file=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LockFileError(f"not UTF-8 text (byte {exc.start})", file=path) from None
    return loads(text, file=path)


def dumps(lock: Lock) -> str:
    import tomli_w

    return HEADER + tomli_w.dumps(lock.to_toml())


def write_lock(lock: Lock, path: Path) -> Path:
    """Write atomically: a reader sees the old lock or the new one, never half of one."""
    text = dumps(lock)
    loads(text, file=path)  # never write a lock this module would refuse to read
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- validation by packaging.pylock ----------------------------------------------------------------


def _check_pep751(data: dict[str, Any]) -> None:
    from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError

    try:
        Pylock.from_dict(data)
    except PylockUnsupportedVersionError as exc:
        raise LockFileError(
            f"{exc.message}: this envbuilder reads PEP 751 lock-version 1.x", file=None, key="lock-version"
        ) from None
    except PylockValidationError as exc:
        raise LockFileError(f"not a valid PEP 751 lock: {exc.message}", file=None, key=exc.context) from None
    except Exception as exc:  # packaging's validator trusts some shapes (found by fuzzing); ours is the answer
        raise LockFileError(f"not a valid PEP 751 lock: {exc}", file=None) from None


def _message_of(exc: LockFileError) -> str:
    """The message without the '<file>: key: ' prefix LockFileError added."""
    text = exc.message
    prefix = f"{exc.file or '<lock>'}{':' + str(exc.line) if exc.line else ''}: "
    text = text.removeprefix(prefix)
    if exc.key:
        text = text.removeprefix(f"{exc.key}: ")
    return text


def _decode_error_line(message: str) -> int | None:
    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None


def _strip_position(message: str) -> str:
    return re.sub(r"\s*\(at line \d+, column \d+\)", "", message).strip() or message


# --- key path -> line ------------------------------------------------------------------------------

_HEADER_LINE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _line_of(text: str, key: str | None) -> int | None:
    """The line of a key path such as `packages[2].wheels[0].hashes.sha256`, or of the nearest
    enclosing table that can be found. Good for the layouts envbuilder, uv and pip write."""
    if not key:
        return None
    lines = _key_lines(text)
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", key)
    while parts:
        path = _join(parts)
        if path in lines:
            return lines[path]
        parts.pop()
    return None


def _join(parts: list[str]) -> str:
    out = ""
    for part in parts:
        out += part if part.startswith("[") or not out else f".{part}"
    return out


def _key_lines(text: str) -> dict[str, int]:
    found: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_LINE.match(line)
        if header:
            name = header.group(2).replace('"', "").replace("'", "")
            if header.group(1) == "[[":
                # an array of tables: its index counts within the enclosing element
                parent = _enclosing(name, table)
                counter = f"{parent}|{name}"
                index = counts.get(counter, -1) + 1
                counts[counter] = index
                table = f"{parent_path(parent, name)}[{index}]"
            else:
                table = parent_path(_enclosing(name, table), name)
            found.setdefault(table, number)
            continue
        key = _KEY_LINE.match(line)
        if key:
            name = key.group(1).replace('"', "").replace("'", "")
            found.setdefault(f"{table}.{name}" if table else name, number)
    return found


def _enclosing(name: str, table: str) -> str:
    """For `packages.wheels` inside `packages[3]`, the element path `packages[3]`."""
    head = name.rsplit(".", 1)[0] if "." in name else ""
    if not head:
        return ""
    plain = re.sub(r"\[\d+\]", "", table)
    while plain and plain != head and not head.startswith(plain + "."):
        table = table.rsplit(".", 1)[0] if "." in table else ""
        plain = re.sub(r"\[\d+\]", "", table)
    if plain == head:
        return table
    return head


def parent_path(parent: str, name: str) -> str:
    if not parent:
        return name
    tail = name[len(re.sub(r"\[\d+\]", "", parent)) + 1 :]
    return f"{parent}.{tail}"
