"""`envbuilder patch --scan DIR`: find the three classic failure classes in C, C++ and CUDA sources
and build scripts, and propose the patch for each hit.

1. fixed-width integers (uint32_t, std::uintptr_t …) in a file whose visible include chain brings
   no <cstdint>/<stdint.h> (GCC 13 stopped pulling it in transitively);
2. FLT_MAX/DBL_MAX … without <cfloat>/<float.h> (CUDA 12.5+ stopped pulling it in);
3. a forced -std=c++14 (or older) in setup.py, a JIT build script or CMakeLists.txt.

"Visible" means the file's own includes and, recursively, the quoted includes that resolve
inside DIR. A few system headers are known to provide the symbols; any other system header is
assumed not to (which is what breaks on new toolchains).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envbuilder.errors import InputError
from envbuilder.patching import CMAKE_STD_RE, INCLUDE_RE, STD_FLAG_RE, STD_LEVEL, blank_hash_comments

SOURCE_SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh", ".h", ".hh", ".hpp", ".hxx", ".inl"}
SKIP_DIRS = {".git", "build", "dist", "third_party", "node_modules", "__pycache__", ".envbuilder-patches"}

INT_RE = re.compile(r"\b(?:std::)?u?int(?:8|16|32|64)_t\b|\b(?:std::)?u?intptr_t\b")
FLOAT_RE = re.compile(r"\b(?:FLT|DBL|LDBL)_(?:MAX|MIN|EPSILON|DIG|MANT_DIG)\b")

# System headers that bring the symbols with them (checked against the toolchains in
# research/blackwell.md: cuda.h includes stdint.h; CUB/Thrust and torch's headers include cstdint).
STDINT_PROVIDERS = re.compile(
    r"^(cstdint|stdint\.h|inttypes\.h|cinttypes|cuda\.h|cub/.*|thrust/.*|torch/.*|ATen/.*|c10/.*)$"
)
CFLOAT_PROVIDERS = re.compile(r"^(cfloat|float\.h)$")


@dataclass(frozen=True)
class Hit:
    kind: str  # cstdint | cfloat | cxx-standard
    file: str  # relative to the scanned directory
    line: int
    text: str
    patch: str  # the patch that fixes it

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "file": self.file, "line": self.line, "text": self.text, "patch": self.patch}


def strip_comments_and_strings(text: str) -> str:
    """Blank out comments and string/char literals, keeping line numbers."""

    def blank(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    pattern = r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'"
    return re.sub(pattern, blank, text, flags=re.DOTALL)


class Scanner:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise InputError(f"--scan {root}: not a directory")
        self.root = root
        self._includes: dict[Path, list[str]] = {}

    def files(self) -> list[Path]:
        out = []
        for path in sorted(self.root.rglob("*")):
            rel_parts = path.relative_to(self.root).parts
            if any(p in SKIP_DIRS for p in rel_parts[:-1]) or not path.is_file():
                continue
            out.append(path)
        return out

    def _direct_includes(self, path: Path) -> list[str]:
        if path not in self._includes:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                text = ""
            self._includes[path] = INCLUDE_RE.findall(text)
        return self._includes[path]

    def _resolve(self, name: str, including: Path) -> Path | None:
        for base in (including.parent, *including.parent.parents):
            candidate = base / name
            if candidate.is_file():
                return candidate
            if base == self.root:
                break
        return None

    def provides(self, path: Path, providers: re.Pattern[str], seen: set[Path] | None = None) -> bool:
        """Whether path's visible include chain brings a provider header."""
        seen = seen if seen is not None else set()
        if path in seen:
            return False
        seen.add(path)
        for name in self._direct_includes(path):
            if providers.match(name):
                return True
            local = self._resolve(name, path)
            if local is not None and self.provides(local, providers, seen):
                return True
        return False

    def scan(self) -> list[Hit]:
        hits: list[Hit] = []
        for path in self.files():
            rel = path.relative_to(self.root).as_posix()
            if path.suffix in SOURCE_SUFFIXES:
                hits += self._scan_source(path, rel)
            elif path.name in ("setup.py", "CMakeLists.txt") or path.suffix in (".py", ".cmake"):
                hits += self._scan_build_script(path, rel)
        return hits

    def _scan_source(self, path: Path, rel: str) -> list[Hit]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        code = strip_comments_and_strings(text)
        lines = text.splitlines()
        hits = []
        for kind, regex, providers, patch in (
            ("cstdint", INT_RE, STDINT_PROVIDERS, "cstdint"),
            ("cfloat", FLOAT_RE, CFLOAT_PROVIDERS, "cfloat"),
        ):
            m = regex.search(code)
            if m and not self.provides(path, providers):
                line = code.count("\n", 0, m.start()) + 1
                hits.append(Hit(kind, rel, line, lines[line - 1].strip(), patch))
        return hits

    def _scan_build_script(self, path: Path, rel: str) -> list[Hit]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        if path.suffix == ".py" and path.name != "setup.py" and "cpp_extension" not in text:
            return []  # only Python that builds extensions (setup.py, torch JIT loaders)
        code = blank_hash_comments(text)
        hits = []
        for m in STD_FLAG_RE.finditer(code):
            if STD_LEVEL[m.group("ver")] < 17 and m.group("prefix") != "/std:":
                line = code.count("\n", 0, m.start()) + 1
                hits.append(Hit("cxx-standard", rel, line, text.splitlines()[line - 1].strip(), "cxx-standard"))
        if path.name == "CMakeLists.txt" or path.suffix == ".cmake":
            for m in CMAKE_STD_RE.finditer(code):
                if int(m.group("ver")) < 17:
                    line = code.count("\n", 0, m.start()) + 1
                    hits.append(Hit("cxx-standard", rel, line, text.splitlines()[line - 1].strip(), "cxx-standard"))
        return hits


def proposals(hits: list[Hit]) -> dict[str, list[str]]:
    """patch name -> files it should list (what to put in a recipe's or extension's patches:)."""
    out: dict[str, list[str]] = {}
    for hit in hits:
        files = out.setdefault(hit.patch, [])
        if hit.file not in files:
            files.append(hit.file)
    return out
