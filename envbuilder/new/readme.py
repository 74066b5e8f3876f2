"""The install commands a README (or INSTALL.md, docs/installation.md …) tells users to type.

Shell in the docs' code blocks (and inline `pip install …` spans) is tokenised with shlex, never
run. A small state machine follows `git clone URL [DIR]` and `cd`, so `git clone … && cd x &&
pip install .` is known to build the cloned repository, and `pip install ./submodules/x` (or
`pip install -e submodules/x`) to build a directory of the method's own tree.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DOC_NAME_RE = re.compile(
    r"^(readme|install|installation|setup|getting[_-]?started|environment)[^/]*\.(md|markdown|rst|txt)$", re.I
)
DOC_DIRS = ("doc", "docs", "documentation")
FENCE_RE = re.compile(r"^\s*(```|~~~)")
INLINE_RE = re.compile(r"`([^`\n]*(?:pip3? install|mim install|conda (?:install|create)|git clone)[^`\n]*)`")
SEPARATORS = {"&&", ";", "||", "|", "&"}
HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
# The nearest heading decides whether an install is part of setting up the method or an optional
# tool for one stage (data preparation, a viewer, evaluation): those are reported, not added.
INSTALL_SECTION_RE = re.compile(
    r"instal|set-?up|environment|requirement|dependenc|quick ?start|getting ?started|prerequisite", re.I
)
OPTIONAL_SECTION_RE = re.compile(
    r"data|prepar|pre-?process|custom|colmap|viewer|visuali|evaluat|metric|render|train|inference|demo|script|tool|optional|extra",
    re.I,
)
PIP_FLAGS_WITH_VALUE = {
    "-f",
    "--find-links",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-c",
    "--constraint",
    "--target",
    "-t",
    "--prefix",
    "--config-settings",
    "-C",
    "--global-option",
    "--install-option",
}
ROOT = "."


@dataclass(frozen=True)
class Command:
    """One install the docs ask for."""

    file: str  # the doc, relative to the root
    line: int
    tool: str  # pip | mim | conda | setup.py | make
    kind: str  # requirement | local | vcs | url | requirements-file | clone | conda | python
    target: str  # the requirement, path (relative to the root or to the clone), URL …
    clone: str | None = None  # the URL of the repository the docs cloned, when the install builds it
    options: tuple[str, ...] = ()
    text: str = ""
    section: str = ""  # the nearest heading above it

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def optional(self) -> bool:
        """Under a heading about one stage of the method (data, viewer …), not its set-up."""
        return (
            bool(self.section)
            and not INSTALL_SECTION_RE.search(self.section)
            and bool(OPTIONAL_SECTION_RE.search(self.section))
        )


def doc_files(root: Path) -> list[Path]:
    found = [p for p in sorted(root.iterdir()) if p.is_file() and DOC_NAME_RE.match(p.name)]
    for d in DOC_DIRS:
        if (root / d).is_dir():
            found += [p for p in sorted((root / d).iterdir()) if p.is_file() and DOC_NAME_RE.match(p.name)]
    return found


def _shell_lines(text: str) -> list[tuple[int, str, int, str]]:
    """(line number, shell line, block) from fenced blocks and inline spans; continuations
    joined. Each block (and each line outside one) gets its own number: docs write every block
    from the repository root."""
    out: list[tuple[int, str, int, str]] = []
    in_fence = False
    block = 0
    heading = ""
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        if FENCE_RE.match(raw):
            in_fence = not in_fence
            block += 1
            pending = None
            continue
        if not in_fence:
            h = HEADING_RE.match(raw)
            if h:
                heading = re.sub(r"[*_`\[\]]|\(.*?\)", "", h.group(1)).strip()
                continue
            found = [m.group(1) for m in INLINE_RE.finditer(raw)]
            stripped = raw.strip()
            if not found and re.match(r"^(\$\s+)?(pip3?|python3? -m pip|mim|conda|git clone)\s", stripped):
                found = [re.sub(r"^\$\s+", "", stripped)]
            for line in found:
                block += 1
                out.append((number, line, block, heading))
            continue
        line = re.sub(r"^\s*(\$|>)\s+", "", raw).rstrip()
        if pending is not None:
            line = pending[1] + " " + line.strip()
            number = pending[0]
        if line.endswith("\\"):
            pending = (number, line[:-1])
            continue
        pending = None
        if line.strip():
            out.append((number, line.strip(), block, heading))
    return out


def _tokens(line: str) -> list[list[str]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not shell we can read
        return []
    commands: list[list[str]] = [[]]
    for tok in tokens:
        if tok in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(tok)
    return [c for c in commands if c]


def _repo_name(url: str) -> str:
    return PurePosixPath(url.rstrip("/").split(":")[-1]).name.removesuffix(".git")


class _Reader:
    def __init__(self, root: Path, doc: str, method_names: set[str]) -> None:
        self.root = root
        self.doc = doc
        self.method_names = {n.lower() for n in method_names}
        self.cwd: tuple[str | None, str] | None = (None, ROOT)  # (clone URL or None for the tree, path)
        self.clones: dict[str, str | None] = {}  # directory -> URL (None: the method itself)
        self.found: list[Command] = []
        self.section = ""

    def _add(
        self,
        line: int,
        tool: str,
        kind: str,
        target: str,
        text: str,
        options: tuple[str, ...] = (),
        clone: str | None = None,
    ) -> None:
        self.found.append(Command(self.doc, line, tool, kind, target, clone, options, text, self.section))

    def _cd(self, arg: str) -> None:
        if self.cwd is None or "$" in arg or arg.startswith(("~", "/", "-")):
            self.cwd = None
            return
        clone, here = self.cwd
        first = PurePosixPath(arg).parts[0] if PurePosixPath(arg).parts else ""
        if clone is None and here == ROOT and first in self.clones:
            url = self.clones[first]
            rest = PurePosixPath(*PurePosixPath(arg).parts[1:]).as_posix()
            self.cwd = (url, rest or ROOT) if url else (None, rest or ROOT)
            return
        path = PurePosixPath(here) / arg
        parts: list[str] = []
        for part in path.parts:
            if part == "..":
                if not parts:
                    self.cwd = (None, ROOT) if clone is not None else None  # back out of a clone
                    return
                parts.pop()
            elif part != ".":
                parts.append(part)
        self.cwd = (clone, PurePosixPath(*parts).as_posix() if parts else ROOT)

    def _target_path(self, target: str) -> tuple[str | None, str] | None:
        if self.cwd is None:
            return None
        clone, here = self.cwd
        joined = PurePosixPath(here) / target
        norm = PurePosixPath(*[p for p in joined.parts if p != "."]).as_posix() if joined.parts else ROOT
        return clone, norm or ROOT

    def command(self, number: int, argv: list[str], text: str) -> None:
        if argv[0] == "sudo":
            argv = argv[1:]
        if not argv:
            return
        head = argv[0]
        if head == "cd" and len(argv) > 1:
            self._cd(argv[1])
            return
        if head == "git" and len(argv) > 2 and argv[1] == "clone":
            rest = [a for a in argv[2:] if not a.startswith("-")]
            if not rest:
                return
            url = rest[0]
            directory = rest[1] if len(rest) > 1 else _repo_name(url)
            self.clones[directory] = None if _repo_name(url).lower() in self.method_names else url
            if self.clones[directory] is not None:
                self._add(number, "git", "clone", directory, text, clone=url)
            return
        if head in ("python", "python3") and len(argv) > 2 and argv[1] == "-m" and argv[2] == "pip":
            argv = ["pip", *argv[3:]]
            head = "pip"
        if head == "uv" and len(argv) > 1 and argv[1] == "pip":
            argv = ["pip", *argv[2:]]
            head = "pip"
        if head in ("pip", "pip3") and len(argv) > 1 and argv[1] == "install":
            self._pip(number, argv[2:], text, "pip")
        elif head == "mim" and len(argv) > 1 and argv[1] == "install":
            self._pip(number, argv[2:], text, "mim")
        elif (
            head in ("python", "python3")
            and len(argv) > 2
            and argv[1] == "setup.py"
            and argv[2] in ("install", "develop", "build_ext", "bdist_wheel")
        ):
            where = self._target_path(".")
            if where is not None:
                clone, path = where
                self._add(number, "setup.py", "local", path, text, clone=clone)
        elif head == "make" and self.cwd is not None and self.cwd[0] is not None:
            self._add(number, "make", "clone", self.cwd[1], text, clone=self.cwd[0])
        elif head == "conda" and len(argv) > 1 and argv[1] in ("install", "create"):
            skip = False
            for arg in argv[2:]:
                if skip:
                    skip = False
                    continue
                if arg in ("-c", "--channel", "-n", "--name", "-p", "--prefix", "-f", "--file"):
                    skip = True
                    continue
                if arg.startswith("-"):
                    continue
                name = arg.split("::")[-1]
                if re.match(r"^python([=<>!~]|$)", name):
                    self._add(number, "conda", "python", name, text)
                else:
                    self._add(number, "conda", "conda", name, text)

    def _pip(self, number: int, args: list[str], text: str, tool: str) -> None:
        options: list[str] = []
        skip = False
        editable = False
        targets: list[tuple[str, bool]] = []
        requirement_file = False
        for arg in args:
            if skip:
                skip = False
                if requirement_file:
                    targets.append((arg, True))
                    requirement_file = False
                continue
            if arg in ("-r", "--requirement"):
                skip = requirement_file = True
                continue
            if arg in PIP_FLAGS_WITH_VALUE:
                options.append(arg)
                skip = True
                continue
            if arg in ("-e", "--editable"):
                editable = True
                continue
            if arg.startswith("-"):
                options.append(arg.split("=")[0])
                continue
            targets.append((arg, False))
        if editable:
            options.append("-e")
        opts = tuple(options)
        for target, is_file in targets:
            if "$" in target or ("<" in target and ">" not in target.lstrip("<")):
                continue
            if is_file:
                where = self._target_path(target)
                if where is not None and where[0] is None:
                    self._add(number, tool, "requirements-file", where[1], text, opts)
                continue
            if target.startswith(("git+", "git://", "hg+", "svn+")):
                self._add(number, tool, "vcs", target, text, opts)
            elif re.match(r"^https?://", target):
                self._add(number, tool, "url", target, text, opts)
            elif (
                target in (".", "..")
                or target.startswith(("./", "../", "/"))
                or ("/" in target and not re.search(r"[=<>~!@]", target))
            ):
                where = self._target_path(target)
                if where is not None:
                    clone, path = where
                    self._add(number, tool, "local", path, text, opts, clone=clone)
            else:
                self._add(number, tool, "requirement", target, text, opts)


def read(root: Path, method_names: set[str]) -> list[Command]:
    """Install commands from the tree's docs. `method_names`: the repository's own names, so
    that the docs' `git clone <this repo> && cd <it>` stays in the tree."""
    found: list[Command] = []
    for doc in doc_files(root):
        rel = doc.relative_to(root).as_posix()
        reader = _Reader(root, rel, method_names)
        try:
            text = doc.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        current = None
        for number, line, block, heading in _shell_lines(text):
            reader.section = heading
            if block != current:
                reader.cwd = (None, ROOT)
                current = block
            for argv in _tokens(line):
                reader.command(number, argv, line)
        found += reader.found
    return found
