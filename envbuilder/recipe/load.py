"""Recipe and extension YAML -> model. Every error names file, line and key and says what was
expected; unknown keys are errors (with a "did you mean").
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import string
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envbuilder import __version__
from envbuilder.errors import RecipeError
from envbuilder.recipe import yamlfile
from envbuilder.recipe.model import (
    ASSET_KINDS,
    STAND_IN_WRITERS,
    Asset,
    Extension,
    ExtensionUse,
    Fallback,
    GitSource,
    Patch,
    PatchUse,
    PathSource,
    Recipe,
    Requirement,
    Smoke,
    SmokeFile,
    SmokeStep,
    Source,
    TorchVariant,
)
from envbuilder.recipe.when import Condition, parse_condition, parse_specifier

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
TORCH_TAG_RE = re.compile(r"^cu(\d{2,3})$")
URL_RE = re.compile(r"^(https?://|ssh://|git://|file://|git@[^:]+:)\S+$")
TORCH_PACKAGES = ("torch", "torchvision", "torchaudio")
HEADER_RE = re.compile(r"^<?([A-Za-z0-9_./+-]+)>?$")
PATCH_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind -> (required, optional) keys
    "include": (("files", "header"), ("satisfied_by",)),
    "cxx-standard": (("files",), ("standard",)),
    "replace": (("files", "find", "replace"), ("regex", "count", "check")),  # count: int, or {file: int}
    "diff": (("diff", "sha256"), ("strip", "files")),
}
CXX_STANDARDS = ("auto", "c++14", "c++17", "c++20", "c++23")

FindExtension = Callable[[str, "Node"], Extension]
FindPatch = Callable[[str, "Node"], Patch]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return type(value).__name__


class Node:
    """A value from the YAML file with where it came from."""

    def __init__(self, value: Any, file: Path, key: str, line: int | None) -> None:
        self.value = value
        self.file = file
        self.key = key
        self.line = line

    def error(self, message: str, hint: str | None = None, *, line: int | None = None) -> RecipeError:
        return RecipeError(message, file=self.file, line=line or self.line, key=self.key or None, hint=hint)

    def _child(self, key: str) -> str:
        return f"{self.key}.{key}" if self.key else key

    def fields(self, required: Iterable[str] = (), optional: Iterable[str] = ()) -> dict[str, Node]:
        required, optional = list(required), list(optional)
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping with keys {', '.join(required + optional)}, got {_kind(self.value)}")
        lines = getattr(self.value, "key_lines", {})
        allowed = required + optional
        result = {}
        for key, value in self.value.items():
            line = lines.get(key, self.line)
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {_kind(key)}", line=line)
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
                raise RecipeError(f"unknown key '{key}'", file=self.file, line=line, key=self._child(key), hint=hint)
            result[key] = Node(value, self.file, self._child(key), line)
        missing = [k for k in required if k not in result]
        if missing:
            raise self.error(f"missing required key '{missing[0]}'", hint=f"required keys: {', '.join(required)}")
        return result

    def entries(self) -> list[tuple[str, Node]]:
        """A mapping whose keys are data (e.g. torch variants)."""
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping, got {_kind(self.value)}")
        lines = getattr(self.value, "key_lines", {})
        out = []
        for key, value in self.value.items():
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {_kind(key)}", line=lines.get(key))
            out.append((key, Node(value, self.file, self._child(key), lines.get(key, self.line))))
        return out

    def items(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {_kind(self.value)}")
        lines = getattr(self.value, "item_lines", [self.line] * len(self.value))
        return [Node(v, self.file, f"{self.key}[{i}]", lines[i]) for i, v in enumerate(self.value)]

    def string(self, *, pattern: re.Pattern[str] | None = None, expected: str = "a string") -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            hint = None
            if isinstance(self.value, float):
                hint = "quote versions: YAML reads 3.10 as the number 3.1"
            raise self.error(f"expected {expected}, got {_kind(self.value)}", hint=hint)
        if pattern and not pattern.match(self.value):
            raise self.error(f"expected {expected}, got {self.value!r}")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"expected true or false, got {_kind(self.value)}")
        return self.value

    def strings(self) -> tuple[str, ...]:
        return tuple(item.string() for item in self.items())

    def specifier(self, *, bare_version_means_series: bool = True) -> SpecifierSet:
        text = self.string(expected="a version specifier such as '>=2.7'")
        try:
            return parse_specifier(text) if bare_version_means_series else SpecifierSet(text)
        except (InvalidSpecifier, InvalidVersion):
            raise self.error(
                f"{text!r} is not a version specifier", hint="examples: '>=2.7', '==2.14.1', '3.12'"
            ) from None

    def condition(self) -> Condition:
        fields = self.value if isinstance(self.value, dict) else None
        if fields is None:
            raise self.error(
                f"expected a mapping of variable to specifier, got {_kind(self.value)}",
                hint="example: when: {cuda: '>=12.5', gcc: '>=13'}",
            )
        for key in fields:
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {_kind(key)}")
        try:
            return parse_condition(fields)
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def number(self) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self.error(f"expected a number, got {_kind(self.value)}")
        return float(self.value)

    def regex(self) -> str:
        text = self.string(expected="a regular expression")
        try:
            groups = re.compile(text).groups
        except re.error as exc:
            raise self.error(f"not a valid regex: {exc}") from None
        if groups != 1:
            raise self.error(f"{text!r} must have exactly one group (the value)")
        return text

    def header(self) -> str:
        """A header name, written cstdint or <cstdint>; returned without the brackets."""
        return self.string(pattern=HEADER_RE, expected="a header name such as cstdint").strip("<>")

    def integer(self, minimum: int = 0) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < minimum:
            raise self.error(f"expected a whole number >= {minimum}, got {_kind(self.value)}")
        return self.value

    def globs(self) -> tuple[str, ...]:
        """File globs relative to a root: never absolute, never climbing out with '..'."""
        out = []
        for item in self.items():
            text = item.string(expected="a path or glob relative to the source root")
            if text.startswith("/") or ".." in Path(text).parts:
                raise item.error(
                    f"{text!r} escapes the source root", hint="give a path relative to the root, without '..'"
                )
            out.append(text)
        if not out:
            raise self.error("expected at least one file")
        return tuple(out)

    def requirement(self) -> str:
        # imported here: packaging.requirements costs ~15 ms, and `plan canary` has no requirements
        from packaging.requirements import InvalidRequirement
        from packaging.requirements import Requirement as Pep508

        text = self.string(expected="a PEP 508 requirement such as 'numpy<2'")
        try:
            Pep508(text)
        except InvalidRequirement as exc:
            raise self.error(f"{text!r} is not a valid requirement: {exc}") from None
        return text


def _root(path: Path) -> tuple[Node, str]:
    data, sha256 = yamlfile.load(path)
    if data is None:
        raise RecipeError("file is empty", file=path, line=1)
    return Node(data, path, "", getattr(data, "line", 1)), sha256


def _check_name(node: Node, path: Path, what: str) -> str:
    name = node.string(pattern=NAME_RE, expected="a lower-case name (letters, digits, '.', '_', '-')")
    if name != path.stem and not (what == "extension" and name == path.parent.name):
        expected = path.parent.name if what == "extension" else path.stem
        raise node.error(f"name {name!r} does not match the file name", hint=f"call it '{expected}' or rename the file")
    return name


def _check_envbuilder(node: Node) -> SpecifierSet:
    spec = node.specifier(bare_version_means_series=False)
    if not spec.contains(Version(__version__), prereleases=True):
        raise node.error(
            f"needs envbuilder {spec}, this is {__version__}", hint="upgrade envbuilder (pip install -U envbuilder)"
        )
    return spec


def load_patch(path: Path) -> Patch:
    """patches/<name>.yaml. A diff patch's file must match its declared sha256."""
    from envbuilder.diagnose import signature_ids  # the ids a patch may say it fixes (cheap: no YAML parse)

    root, sha256 = _root(path)
    common_required = ("name", "summary", "fixes", "kind")
    common_optional = ("when", "envbuilder")
    every_key = sorted({k for req, opt in PATCH_KINDS.values() for k in req + opt})
    kind_node = root.fields(required=common_required, optional=(*common_optional, *every_key))["kind"]
    kind = kind_node.string(expected=f"a patch kind ({', '.join(PATCH_KINDS)})")
    if kind not in PATCH_KINDS:
        raise kind_node.error(f"unknown patch kind {kind!r}", hint=f"kinds: {', '.join(PATCH_KINDS)}")
    required, optional = PATCH_KINDS[kind]
    f = root.fields(required=common_required + required, optional=common_optional + optional)
    if "envbuilder" in f:
        _check_envbuilder(f["envbuilder"])
    name = _check_name(f["name"], path, "patch")
    ids = sorted(signature_ids())
    fixes = f["fixes"].string(expected="a diagnose signature id")
    if fixes not in ids:
        close = difflib.get_close_matches(fixes, ids, n=1)
        raise f["fixes"].error(
            f"unknown error signature {fixes!r}",
            hint=f"did you mean '{close[0]}'?" if close else "see `envbuilder diagnose --list`",
        )
    values: dict[str, Any] = {}
    if kind == "include":
        values["header"] = f["header"].header()
        if "satisfied_by" in f:
            values["satisfied_by"] = tuple(n.header() for n in f["satisfied_by"].items())
    elif kind == "cxx-standard" and "standard" in f:
        standard = f["standard"].string()
        if standard not in CXX_STANDARDS:
            raise f["standard"].error(f"unknown standard {standard!r}", hint=f"one of {', '.join(CXX_STANDARDS)}")
        values["standard"] = standard
    elif kind == "replace":
        values["find"] = f["find"].string(expected="the text (or regex) to find")
        if not isinstance(f["replace"].value, str):
            raise f["replace"].error(f"expected a string (may be empty), got {_kind(f['replace'].value)}")
        values["replace"] = f["replace"].value
        values["regex"] = f["regex"].boolean() if "regex" in f else False
        if "count" in f and isinstance(f["count"].value, dict):
            counts = tuple((k, n.integer(minimum=1)) for k, n in f["count"].entries())
            values["counts"] = counts
        else:
            values["count"] = f["count"].integer(minimum=1) if "count" in f else 1
        values["check"] = f["check"].string() if "check" in f else None
        if values["regex"]:
            try:
                re.compile(values["find"], re.MULTILINE)
            except re.error as exc:
                raise f["find"].error(f"not a valid regex: {exc}") from None
    elif kind == "diff":
        diff = (path.parent / f["diff"].string(expected="a .diff file next to the patch")).resolve()
        try:
            data = diff.read_bytes()
        except OSError as exc:
            raise f["diff"].error(f"cannot read {diff}: {exc.strerror}") from None
        declared = f["sha256"].string(
            pattern=re.compile(r"^[0-9a-f]{64}$"), expected="the diff's sha256 (64 hex digits)"
        )
        actual = hashlib.sha256(data).hexdigest()
        if actual != declared:
            raise f["sha256"].error(
                f"{diff.name} has sha256 {actual}, the patch declares {declared}",
                hint="the diff changed: review it, then update sha256",
            )
        values.update(diff=diff, strip=f["strip"].integer() if "strip" in f else 1)
        sha256 = hashlib.sha256((sha256 + actual).encode()).hexdigest()
    return Patch(
        name=name,
        file=path,
        sha256=sha256,
        summary=f["summary"].string(),
        fixes=fixes,
        kind=kind,
        files=f["files"].globs() if "files" in f else (),
        when=f["when"].condition() if "when" in f else None,
        **values,
    )


def _probe(node: Node) -> str:
    from envbuilder.paths import known_probes, probe_script

    name = node.string(pattern=NAME_RE, expected="a probe name")
    if not probe_script(name).is_file():
        raise node.error(f"no probe {name!r}", hint=f"probes: {', '.join(known_probes())}")
    return name


def _patch_uses(node: Node, find_patch: FindPatch) -> tuple[PatchUse, ...]:
    uses = []
    for item in node.items():
        if isinstance(item.value, dict):
            f = item.fields(required=("use",), optional=("files", "when"))
            name_node = f["use"]
            files = f["files"].globs() if "files" in f else ()
            when = f["when"].condition() if "when" in f else None
        else:
            name_node, files, when = item, (), None
        name = name_node.string(pattern=NAME_RE, expected="a patch name")
        patch = find_patch(name, name_node)
        if patch.kind == "diff" and files:
            raise item.error("a diff patch names its files itself; drop 'files'")
        uses.append(PatchUse(patch=patch, files=files, when=when))
    return tuple(uses)


def load_extension(path: Path, find_patch: FindPatch) -> Extension:
    root, sha256 = _root(path)
    f = root.fields(
        required=("name", "summary", "import"),
        optional=("envbuilder", "build_requires", "requires", "probe", "patches", "license", "source", "build_env"),
    )
    if "envbuilder" in f:
        _check_envbuilder(f["envbuilder"])
    name = _check_name(f["name"], path, "extension")
    extension = Extension(
        name=name,
        file=path,
        sha256=sha256,
        summary=f["summary"].string(),
        import_name=f["import"].string(pattern=MODULE_RE, expected="a Python module name"),
        build_requires=tuple(n.requirement() for n in f["build_requires"].items())
        if "build_requires" in f
        else Extension.build_requires,
        requires=tuple(n.requirement() for n in f["requires"].items()) if "requires" in f else (),
        probe=_probe(f["probe"]) if "probe" in f else None,
        patches=_patch_uses(f["patches"], find_patch) if "patches" in f else (),
        license=f["license"].string() if "license" in f else None,
        source=_git_source(f["source"]) if "source" in f else None,
        build_env=_env(f["build_env"]) if "build_env" in f else (),
    )
    return extension


def _env(node: Node) -> tuple[tuple[str, str], ...]:
    env = []
    for key, vnode in node.entries():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise vnode.error(f"{key!r} is not an environment variable name")
        env.append((key, vnode.string(expected="a string (quote numbers)")))
    return tuple(env)


def _commit(node: Node) -> str:
    commit = node.value
    if not isinstance(commit, str) or not COMMIT_RE.match(commit):
        shown = commit if isinstance(commit, str) else _kind(commit)
        raise node.error(
            f"expected a full 40-character commit hash, got {shown!r}",
            hint="quote the hash: YAML reads a hash of digits as a number"
            if isinstance(commit, (int, float))
            else "branches, tags and short hashes move or collide; resolve one with "
            "`git rev-parse <ref>` in a clone and paste the full hash",
        )
    return commit


def _git_source(node: Node) -> GitSource:
    f = node.fields(required=("git", "commit"), optional=("submodules", "branch", "note", "fallbacks"))
    fallbacks = []
    for item in f["fallbacks"].items() if "fallbacks" in f else []:
        g = item.fields(required=("path", "commit", "why"))
        fallbacks.append(Fallback(path=g["path"].string(), commit=_commit(g["commit"]), why=g["why"].string()))
    return GitSource(
        url=f["git"].string(pattern=URL_RE, expected="a git URL (https://, ssh://, file:// or git@host:)"),
        commit=_commit(f["commit"]),
        submodules=f["submodules"].boolean() if "submodules" in f else True,
        branch=f["branch"].string() if "branch" in f else None,
        note=f["note"].string() if "note" in f else None,
        fallbacks=tuple(fallbacks),
    )


def _source(node: Node, recipe_file: Path) -> Source:
    if isinstance(node.value, dict) and "path" in node.value:
        f = node.fields(required=("path",))
        raw = Path(f["path"].string(expected="a directory path"))
        return PathSource(path=(recipe_file.parent / raw).resolve() if not raw.is_absolute() else raw)
    return _git_source(node)


def _torch(node: Node) -> tuple[TorchVariant, ...]:
    variants = []
    for tag, vnode in node.entries():
        match = TORCH_TAG_RE.match(tag)
        if not match:
            raise RecipeError(
                f"unknown CUDA build tag {tag!r}",
                file=node.file,
                line=vnode.line,
                key=vnode.key,
                hint="use PyTorch's tags: cu126, cu128, cu129, cu130 …",
            )
        digits = match.group(1)
        cuda = Version(f"{digits[:-1]}.{digits[-1]}")
        f = vnode.fields(required=("torch",), optional=(*TORCH_PACKAGES[1:], "index"))
        packages = tuple(
            (name, str(f[name].specifier(bare_version_means_series=False))) for name in TORCH_PACKAGES if name in f
        )
        index = f["index"].string(pattern=URL_RE, expected="an index URL") if "index" in f else None
        variants.append(TorchVariant(tag=tag, cuda=cuda, packages=packages, index=index))
    if not variants:
        raise node.error("no torch variant", hint="give at least one, e.g. cu130: {torch: '>=2.11'}")
    return tuple(variants)


def _requirements(node: Node) -> tuple[Requirement, ...]:
    out = []
    for item in node.items():
        if isinstance(item.value, dict):
            f = item.fields(required=("req",), optional=("when", "why", "no_build_isolation", "sdist_env"))
            out.append(
                Requirement(
                    text=f["req"].requirement(),
                    when=f["when"].condition() if "when" in f else None,
                    why=f["why"].string() if "why" in f else None,
                    no_build_isolation=f["no_build_isolation"].boolean() if "no_build_isolation" in f else False,
                    sdist_env=_sdist_env(f["sdist_env"]) if "sdist_env" in f else (),
                )
            )
        else:
            out.append(Requirement(text=item.requirement()))
    return tuple(out)


def _sdist_env(node: Node) -> tuple[tuple[str, str], ...]:
    env = _env(node)
    for key, value in env:
        try:
            names = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
        except ValueError as exc:
            raise node.error(f"sdist_env {key}: {exc}", hint="write a literal brace as {{ or }}") from None
        if names - {"site"}:
            raise node.error(
                f"sdist_env {key}: unknown placeholder(s) {', '.join(sorted(names - {'site'}))}",
                hint="only {site} (the env's site-packages) is known",
            )
    return env


def _extension_uses(node: Node, find_extension: FindExtension) -> tuple[ExtensionUse, ...]:
    uses = []
    seen: set[str] = set()
    for item in node.items():
        f = item.fields(required=("use",), optional=("path", "when"))
        name = f["use"].string(pattern=NAME_RE, expected="an extension name")
        if name in seen:
            raise f["use"].error(f"extension {name!r} is listed twice")
        seen.add(name)
        extension = find_extension(name, f["use"])
        if "path" not in f and extension.source is None:
            raise item.error(f"extension {name!r} lives in the method's tree: say where with 'path'")
        rel = f["path"].string(expected="a path inside the source tree") if "path" in f else "."
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise f["path"].error(f"{rel!r} leaves the source tree", hint="give a path relative to the source root")
        uses.append(ExtensionUse(extension=extension, path=rel, when=f["when"].condition() if "when" in f else None))
    return tuple(uses)


def load_recipe(path: Path, find_extension: FindExtension, find_patch: FindPatch) -> Recipe:
    """Parse recipes/<name>.yaml. `find_extension` / `find_patch` resolve names (the catalog)."""
    root, sha256 = _root(path)
    f = root.fields(
        required=("name", "summary", "source", "python", "torch"),
        optional=("envbuilder", "license", "requirements", "extensions", "patches", "env", "assets", "smoke", "notes"),
    )
    envbuilder = _check_envbuilder(f["envbuilder"]) if "envbuilder" in f else None
    assets = _assets(f["assets"]) if "assets" in f else ()
    smoke = _smoke(f["smoke"], {a.name for a in assets}) if "smoke" in f else None
    steps = {s.name for s in smoke.steps} if smoke else set()
    for asset, item in zip(assets, f["assets"].items() if "assets" in f else [], strict=True):
        unknown = [n for n in asset.needed_by if n not in steps and n != "preprocess"]
        if unknown:
            raise item.error(
                f"asset {asset.name!r}: needed_by names {unknown[0]!r}, which is no smoke step",
                hint=f"steps: {', '.join(sorted(steps)) or 'none'}, or 'preprocess'",
            )
    if smoke:  # a step's `needs` and an asset's `needed_by` say the same thing: keep both views whole
        assets, smoke = _link_needs(assets, smoke)
    return Recipe(
        name=_check_name(f["name"], path, "recipe"),
        file=path,
        sha256=sha256,
        summary=f["summary"].string(),
        source=_source(f["source"], path),
        python=f["python"].specifier(),
        torch=_torch(f["torch"]),
        requirements=_requirements(f["requirements"]) if "requirements" in f else (),
        extensions=_extension_uses(f["extensions"], find_extension) if "extensions" in f else (),
        patches=_patch_uses(f["patches"], find_patch) if "patches" in f else (),
        env=_env(f["env"]) if "env" in f else (),
        license=f["license"].string() if "license" in f else None,
        envbuilder=envbuilder,
        assets=assets,
        smoke=smoke,
        notes=f["notes"].string() if "notes" in f else None,
    )


def _link_needs(assets: tuple[Asset, ...], smoke: Smoke) -> tuple[tuple[Asset, ...], Smoke]:
    pairs = {(a.name, step) for a in assets for step in a.needed_by}
    pairs |= {(name, s.name) for s in smoke.steps for name in s.needs}
    linked_assets = tuple(
        dataclasses.replace(
            a, needed_by=(*a.needed_by, *sorted(st for n, st in pairs if n == a.name and st not in a.needed_by))
        )
        for a in assets
    )
    steps = tuple(
        dataclasses.replace(s, needs=(*s.needs, *sorted(n for n, st in pairs if st == s.name and n not in s.needs)))
        for s in smoke.steps
    )
    return linked_assets, dataclasses.replace(smoke, steps=steps)


SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS = ("data", "out", "src", "python", "prefix", "probes")  # probes: envbuilder's own helper scripts


def _relative_or_home(node: Node) -> str:
    text = node.string(expected="a path relative to the source root, or ~/…")
    if text.startswith("/") or ".." in Path(text).parts:
        raise node.error(
            f"{text!r}: give a path relative to the source root, or one under ~/", hint="no absolute paths, no '..'"
        )
    return text


def _assets(node: Node) -> tuple[Asset, ...]:
    assets: list[Asset] = []
    for item in node.items():
        f = item.fields(
            required=("name", "path", "kind", "gated", "source"),
            optional=(
                "register",
                "license",
                "url",
                "archive",
                "member",
                "sha256",
                "sha1",
                "git_blob",
                "size",
                "needed_by",
                "variant",
                "note",
                "stand_in",
            ),
        )
        name = f["name"].string(pattern=NAME_RE, expected="an asset name")
        if any(a.name == name for a in assets):
            raise f["name"].error(f"asset {name!r} is listed twice")
        kind = f["kind"].string()
        if kind not in ASSET_KINDS:
            close = difflib.get_close_matches(kind, ASSET_KINDS, n=1)
            raise f["kind"].error(
                f"unknown asset kind {kind!r}",
                hint=f"did you mean '{close[0]}'?" if close else f"kinds: {', '.join(ASSET_KINDS)}",
            )
        gated = f["gated"].boolean()
        if gated and "url" in f:
            raise f["url"].error(
                "a gated asset has no direct url: envbuilder never downloads licensed files",
                hint="put the page in 'source'",
            )
        if gated and "register" not in f:
            raise item.error(f"gated asset {name!r} needs 'register': the page where users sign up")
        if "member" in f and "archive" not in f:
            raise f["member"].error("'member' names a file inside 'archive', which is missing")
        stand_in = f["stand_in"].string() if "stand_in" in f else None
        if stand_in is not None and stand_in not in STAND_IN_WRITERS:
            raise f["stand_in"].error(
                f"unknown stand-in writer {stand_in!r}", hint=f"writers: {', '.join(STAND_IN_WRITERS)}"
            )
        assets.append(
            Asset(
                name=name,
                path=_relative_or_home(f["path"]),
                kind=kind,
                gated=gated,
                source=f["source"].string(),
                register=f["register"].string() if "register" in f else None,
                license=f["license"].string() if "license" in f else None,
                url=f["url"].string(pattern=URL_RE, expected="a download URL") if "url" in f else None,
                archive=f["archive"].string() if "archive" in f else None,
                member=f["member"].string() if "member" in f else None,
                sha256=f["sha256"].string(pattern=SHA256_RE, expected="64 hex digits") if "sha256" in f else None,
                sha1=f["sha1"].string(pattern=SHA1_RE, expected="40 hex digits") if "sha1" in f else None,
                git_blob=f["git_blob"].string(pattern=SHA1_RE, expected="40 hex digits (git hash-object)")
                if "git_blob" in f
                else None,
                size=f["size"].integer(minimum=1) if "size" in f else None,
                needed_by=f["needed_by"].strings() if "needed_by" in f else (),
                variant=f["variant"].string() if "variant" in f else None,
                note=f["note"].string() if "note" in f else None,
                stand_in=stand_in,
            )
        )
    return tuple(assets)


def _cwd(node: Node) -> str:
    """A step's working directory: relative to the source root, or under a placeholder ({data})."""
    text = node.string(expected="a folder relative to the source root, or one under {data}, {out} or {prefix}")
    if text.startswith("{"):
        head = text.split("/", 1)[0]
        if head not in ("{data}", "{out}", "{prefix}") or ".." in Path(text).parts:
            raise node.error(f"{text!r}: a working directory may start with {{data}}, {{out}} or {{prefix}} only")
        return text
    return _relative_or_home(node)


def _check_placeholders(node: Node, text: str) -> str:
    for name in PLACEHOLDER_RE.findall(text):
        if name not in PLACEHOLDERS:
            raise node.error(
                f"unknown placeholder {{{name}}} in {text!r}",
                hint=f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
            )
    return text


def _smoke(node: Node, asset_names: set[str]) -> Smoke:
    f = node.fields(required=("steps",), optional=("data", "files", "note"))
    steps = []
    for item in f["steps"].items():
        g = item.fields(
            required=("name", "run"),
            optional=(
                "cwd",
                "env",
                "timeout",
                "needs",
                "outputs",
                "images",
                "ground_truth",
                "psnr_floor",
                "loss",
                "measure",
                "rewrites",
            ),
        )
        run = tuple(
            _check_placeholders(n, n.string(expected="an argument (argv lists only, no shell strings)"))
            for n in g["run"].items()
        )
        if not run:
            raise g["run"].error("expected the command as a list of arguments")
        needs = g["needs"].strings() if "needs" in g else ()
        rewrites = g["rewrites"].strings() if "rewrites" in g else ()
        for asset in (*needs, *rewrites):
            if asset not in asset_names:
                raise g["needs" if asset in needs else "rewrites"].error(
                    f"unknown asset {asset!r}",
                    hint=f"assets of this recipe: {', '.join(sorted(asset_names)) or 'none'}",
                )
        steps.append(
            SmokeStep(
                name=g["name"].string(pattern=NAME_RE, expected="a step name"),
                run=run,
                cwd=_cwd(g["cwd"]) if "cwd" in g else ".",
                env=_env(g["env"]) if "env" in g else (),
                timeout=g["timeout"].integer(minimum=1) if "timeout" in g else 900,
                needs=needs,
                outputs=tuple(_check_placeholders(n, n.string()) for n in g["outputs"].items())
                if "outputs" in g
                else (),
                images=_check_placeholders(g["images"], g["images"].string()) if "images" in g else None,
                ground_truth=_check_placeholders(g["ground_truth"], g["ground_truth"].string())
                if "ground_truth" in g
                else None,
                psnr_floor=g["psnr_floor"].number() if "psnr_floor" in g else None,
                loss=g["loss"].regex() if "loss" in g else None,
                measure=tuple((key, value.regex()) for key, value in g["measure"].entries()) if "measure" in g else (),
                rewrites=rewrites,
            )
        )
    files = []
    for item in f["files"].items() if "files" in f else []:
        g = item.fields(required=("path",), optional=("text", "copy_of", "replace"))
        if ("text" in g) == ("copy_of" in g):
            raise item.error("give either 'text' (the whole file) or 'copy_of' (a file of the tree to copy)")
        pairs = []
        for pair in g["replace"].items() if "replace" in g else []:
            old_new = pair.items()
            if len(old_new) != 2:
                raise pair.error("expected [old, new]")
            pairs.append(
                (old_new[0].string(), old_new[1].value if isinstance(old_new[1].value, str) else old_new[1].string())
            )
        files.append(
            SmokeFile(
                path=_relative_or_home(g["path"]),
                text=g["text"].string() if "text" in g else None,
                copy_of=_relative_or_home(g["copy_of"]) if "copy_of" in g else None,
                replace=tuple(pairs),
            )
        )
    return Smoke(
        data=f["data"].string(pattern=NAME_RE, expected="a data generator name") if "data" in f else None,
        steps=tuple(steps),
        files=tuple(files),
        note=f["note"].string() if "note" in f else None,
    )
