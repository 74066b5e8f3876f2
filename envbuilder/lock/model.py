"""What a lock holds, as typed values: the packages pip and uv install (PEP 751 `[[packages]]`)
and envbuilder's own part (`[tool.envbuilder]`), which installers ignore.

An envbuilder lock is for one target (one Python, one platform), so each package has exactly one
file: a wheel, or an sdist where the package publishes no wheel for the target (chumpy). The
file's sha256 and size are always hashed from bytes envbuilder downloaded itself (never copied
from an index page: the PyTorch index has served wrong and missing hashes, research/locks.md §4).

`[tool.envbuilder]` schema (version 1; every key optional unless marked):

    schema = 1                                  # required
    envbuilder = "0.4.0"                        # the version that wrote the lock
    recipe = {name, variant, sha256}            # variant: the torch variant tag (cu130)
    target = {python = "3.12", platform = "x86_64-manylinux_2_28"}   # CPython
    toolchain = {cuda = "13.0", gcc-major = 12, python = "3.12",  # what a host must meet
                 nvcc = "13.0.88", gcc = "12.2.0", abi = "cp312"}  # what the extension keys were computed with
    archs = ["12.0"]
    torch = {version, cuda, variant, index, packages = {torchvision = "0.29.1"}}  # what the lock expects
    no-build-isolation = ["chumpy"]             # sdists the installer builds against the env
    base-provides = {torch = "2.11.0"}          # a bundle's lock: left out, the base must have them
    [tool.envbuilder.resolution]                # how the packages were chosen (informational)
    resolver, resolver-version, indexes, torch-index, find-links, constraints, site-config,
    requirements, index-strategy, base = {freeze, sha256} (lock --base: the pip freeze it stood on)
    [tool.envbuilder.source]                    # git = url, commit = 40 hex | path = dir, digest
    [[tool.envbuilder.source.submodules]]       # path, url, commit; fallback = true, pinned, why
    [tool.envbuilder.extension-sources.NAME]    # an extension's own repository, same shape
    [[tool.envbuilder.patches]]                 # root, tree (an extension's own repository), name, sha256
    [[tool.envbuilder.extensions]]              # name, key (the content key of its built wheel)

Nothing in it changes what pip or uv install (PEP 751: [tool] "MUST NOT affect installation").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

from packaging.utils import canonicalize_name

from envbuilder.errors import InputError
from envbuilder.lock.errors import LockFileError
from envbuilder.lock.target import Target

SCHEMA = 1
SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")

T = TypeVar("T")


# --- typed access to TOML data, with the key path in every error ---------------------------------


class Fields:
    """A TOML table and where it sits (`packages[2].wheels[0]`); errors name the full key path."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise LockFileError(f"expected a table, found {_kind(data)}", file=None, key=path or None)
        self.data: Mapping[str, Any] = data
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> LockFileError:
        return LockFileError(message, file=None, key=self.key(name))

    def _get(self, name: str, kind: type[T] | tuple[type, ...], required: bool, what: str) -> Any:
        if name not in self.data:
            if required:
                raise self.fail(name, "missing (required)")
            return None
        value = self.data[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(name, f"expected {what}, found {_kind(value)}")
        return value

    def string(self, name: str, *, required: bool = False, pattern: re.Pattern[str] | None = None) -> Any:
        value = self._get(name, str, required, "a string")
        if value is not None and pattern is not None and not pattern.fullmatch(value):
            raise self.fail(name, f"{value!r} is not valid (expected {pattern.pattern})")
        return value

    def integer(self, name: str, *, required: bool = False) -> Any:
        value = self._get(name, int, required, "an integer")
        if value is not None and value < 0:
            raise self.fail(name, f"{value} is negative")
        return value

    def boolean(self, name: str) -> bool:
        return bool(self._get(name, bool, False, "true or false"))

    def timestamp(self, name: str) -> datetime | None:
        value: datetime | None = self._get(name, datetime, False, "a TOML date-time")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self._get(name, list, False, "an array of strings")
        for i, item in enumerate(value or []):
            if not isinstance(item, str):
                raise LockFileError(f"expected a string, found {_kind(item)}", file=None, key=f"{self.key(name)}[{i}]")
        return tuple(value or [])

    def table(self, name: str, *, required: bool = False) -> Fields | None:
        value = self._get(name, Mapping, required, "a table")
        return None if value is None else Fields(value, self.key(name))

    def tables(self, name: str, *, required: bool = False) -> list[Fields]:
        value = self._get(name, list, required, "an array of tables")
        return [Fields(item, f"{self.key(name)}[{i}]") for i, item in enumerate(value or [])]

    def str_map(self, name: str) -> dict[str, str]:
        table = self.table(name)
        if table is None:
            return {}
        return {k: table.string(k, required=True) for k in table.data}


def _kind(value: object) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", float: "a float", list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != [] and v != {}}


# --- the packages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """The one file of a package: where it came from, and its bytes' identity."""

    kind: Literal["wheel", "sdist"]
    filename: str
    sha256: str
    size: int
    url: str | None = None
    path: str | None = None  # relative to the lock file (bundles) or absolute (install locks)
    upload_time: datetime | None = None

    def to_toml(self) -> dict[str, Any]:
        # `name` is written only when it differs from the URL's last part (PEP 751 allows leaving it out)
        return _drop_none(
            {
                "name": self.filename,
                "url": self.url,
                "path": self.path,
                "upload-time": self.upload_time,
                "size": self.size,
                "hashes": {"sha256": self.sha256},
            }
        )

    @classmethod
    def from_toml(cls, f: Fields, kind: Literal["wheel", "sdist"]) -> Artifact:
        url, path = f.string("url"), f.string("path")
        if not url and not path:
            raise LockFileError("a file needs a url or a path", file=None, key=f.path)
        filename = f.string("name") or _last_part(path or url or "")
        hashes = f.table("hashes", required=True)
        assert hashes is not None
        sha256 = hashes.string("sha256", pattern=SHA256)
        if sha256 is None:
            raise hashes.fail("sha256", "missing: envbuilder locks carry the sha256 of every file")
        size = f.integer("size")
        if size is None:
            raise f.fail("size", "missing: envbuilder locks carry the size of every file")
        return cls(kind, filename, sha256, size, url=url, path=path, upload_time=f.timestamp("upload-time"))


def _last_part(location: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(location).path.rsplit("/", 1)[-1]) if "://" in location else location.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LockedPackage:
    name: str  # normalized (PEP 503)
    version: str
    artifact: Artifact
    index: str | None = None  # the simple-API base the file was listed on

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", canonicalize_name(self.name))

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.index:
            data["index"] = self.index
        if self.artifact.kind == "wheel":
            data["wheels"] = [self.artifact.to_toml()]
        else:
            data["sdist"] = self.artifact.to_toml()
        return data

    @classmethod
    def from_toml(cls, f: Fields) -> LockedPackage:
        name = f.string("name", required=True)
        version = f.string("version")
        if version is None:
            raise f.fail("version", "missing: envbuilder locks pin every package to one version")
        wheels = f.tables("wheels")
        sdist = f.table("sdist")
        for direct in ("vcs", "directory", "archive"):
            if direct in f.data:
                raise f.fail(direct, "envbuilder locks hold wheels and sdists only (no direct sources)")
        if len(wheels) > 1:
            raise f.fail("wheels", f"{len(wheels)} wheels: an envbuilder lock holds one file per package (one target)")
        if wheels and sdist:
            raise f.fail("sdist", "both a wheel and an sdist: an envbuilder lock holds one file per package")
        if wheels:
            artifact = Artifact.from_toml(wheels[0], "wheel")
        elif sdist is not None:
            artifact = Artifact.from_toml(sdist, "sdist")
        else:
            raise f.fail("wheels", "missing: a package needs a wheel or an sdist")
        return cls(name, version, artifact, index=f.string("index"))


# --- envbuilder's part ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submodule:
    path: str
    url: str
    commit: str
    fallback: bool = False  # the pinned gitlink was unavailable: the recipe's fallback commit was used
    pinned: str | None = None  # the gitlink the superproject names, when a fallback replaced it
    why: str | None = None

    def to_toml(self) -> dict[str, Any]:
        return _drop_none(
            {
                "path": self.path,
                "url": self.url,
                "commit": self.commit,
                "fallback": True if self.fallback else None,
                "pinned": self.pinned,
                "why": self.why,
            }
        )

    @classmethod
    def from_toml(cls, f: Fields) -> Submodule:
        return cls(
            f.string("path", required=True),
            f.string("url", required=True),
            f.string("commit", required=True, pattern=COMMIT),
            fallback=f.boolean("fallback"),
            pinned=f.string("pinned", pattern=COMMIT),
            why=f.string("why"),
        )


@dataclass(frozen=True)
class Source:
    """A git repository at a commit with its submodules, or a local path with its content digest."""

    git: str | None = None
    commit: str | None = None
    submodules: tuple[Submodule, ...] = ()
    path: str | None = None
    digest: str | None = None

    def to_toml(self) -> dict[str, Any]:
        return _drop_none(
            {
                "git": self.git,
                "commit": self.commit,
                "path": self.path,
                "digest": self.digest,
                "submodules": [s.to_toml() for s in self.submodules],
            }
        )

    @classmethod
    def from_toml(cls, f: Fields) -> Source:
        source = cls(
            git=f.string("git"),
            commit=f.string("commit", pattern=COMMIT),
            submodules=tuple(Submodule.from_toml(s) for s in f.tables("submodules")),
            path=f.string("path"),
            digest=f.string("digest", pattern=SHA256),
        )
        if bool(source.git) == bool(source.path):
            raise LockFileError("a source is either git (with commit) or path", file=None, key=f.path)
        if source.git and not source.commit:
            raise f.fail("commit", "missing: a git source needs its full commit")
        return source

    @classmethod
    def from_outputs(cls, data: Mapping[str, Any]) -> Source:
        """From the sources step's outputs ({git, commit, submodules: [{path, url, commit,
        pinned?, fallback?}]} or {path, digest})."""
        if data.get("git"):
            subs = tuple(
                Submodule(
                    str(s["path"]),
                    str(s["url"]),
                    str(s["commit"]),
                    fallback=bool(s.get("fallback")),
                    pinned=s.get("pinned"),
                    why=str(s["fallback"]) if isinstance(s.get("fallback"), str) else None,
                )
                for s in data.get("submodules", [])
            )
            return cls(git=str(data["git"]), commit=str(data["commit"]), submodules=subs)
        return cls(path=str(data["path"]), digest=data.get("digest"))


@dataclass(frozen=True)
class PatchRef:
    root: str  # "." for the method's tree, else the extension's path
    name: str
    sha256: str
    tree: str | None = None  # the extension whose own repository holds root (gsplat); None: the method's


@dataclass(frozen=True)
class ExtensionRef:
    name: str
    key: str  # content key of the built wheel (cache.wheel_key of the extension's key inputs)


@dataclass(frozen=True)
class Toolchain:
    cuda: str | None = None  # "13.0"
    gcc_major: int | None = None
    python: str | None = None
    # the exact toolchain the extension keys were computed with (a key includes them)
    nvcc: str | None = None  # "13.0.88"
    gcc: str | None = None  # "12.2.0"
    abi: str | None = None  # "cp312"


@dataclass(frozen=True)
class TorchExpectation:
    version: str  # "2.9.1+cu128"
    cuda: str | None = None  # the CUDA of the torch build ("12.8")
    variant: str | None = None  # the recipe's variant tag (cu128)
    index: str | None = None
    packages: Mapping[str, str] = field(default_factory=dict)  # torchvision -> version, ...


@dataclass(frozen=True)
class Resolution:
    resolver: str = "uv"
    resolver_version: str | None = None
    indexes: tuple[str, ...] = ()
    torch_index: str | None = None
    find_links: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    site_config: bool = False  # indexes/find-links/constraints came from this machine's pip config
    index_strategy: str | None = None
    requirements: tuple[str, ...] = ()
    base: Mapping[str, str] = field(default_factory=dict)  # --base FREEZE: {freeze: path as given, sha256}


@dataclass(frozen=True)
class EnvbuilderPart:
    envbuilder: str | None = None
    recipe: str | None = None
    variant: str | None = None
    recipe_sha256: str | None = None
    target: Target | None = None
    toolchain: Toolchain | None = None
    archs: tuple[str, ...] = ()
    torch: TorchExpectation | None = None
    no_build_isolation: tuple[str, ...] = ()  # normalized names
    # sdist name -> variables its build needs ("{site}": the env's site-packages), from the recipe
    sdist_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # a bundle's lock: packages left out because the base provides them (name -> version); the
    # build checks the base has them (bundle --without torch, --base FREEZE)
    provided: Mapping[str, str] = field(default_factory=dict)
    resolution: Resolution | None = None
    source: Source | None = None
    extension_sources: Mapping[str, Source] = field(default_factory=dict)
    patches: tuple[PatchRef, ...] = ()
    extensions: tuple[ExtensionRef, ...] = ()

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema": SCHEMA, "envbuilder": self.envbuilder}
        if self.recipe or self.recipe_sha256:
            data["recipe"] = _drop_none({"name": self.recipe, "variant": self.variant, "sha256": self.recipe_sha256})
        if self.target:
            data["target"] = {"python": self.target.python, "platform": self.target.platform}
        if self.toolchain:
            data["toolchain"] = _drop_none(
                {
                    "cuda": self.toolchain.cuda,
                    "gcc-major": self.toolchain.gcc_major,
                    "python": self.toolchain.python,
                    "nvcc": self.toolchain.nvcc,
                    "gcc": self.toolchain.gcc,
                    "abi": self.toolchain.abi,
                }
            )
        data["archs"] = list(self.archs)
        if self.torch:
            data["torch"] = _drop_none(
                {
                    "version": self.torch.version,
                    "cuda": self.torch.cuda,
                    "variant": self.torch.variant,
                    "index": self.torch.index,
                    "packages": dict(sorted(self.torch.packages.items())),
                }
            )
        data["no-build-isolation"] = list(self.no_build_isolation)
        if self.sdist_env:
            data["sdist-env"] = {name: dict(sorted(env.items())) for name, env in sorted(self.sdist_env.items())}
        if self.provided:
            data["base-provides"] = dict(sorted(self.provided.items()))
        if self.resolution:
            r = self.resolution
            data["resolution"] = _drop_none(
                {
                    "resolver": r.resolver,
                    "resolver-version": r.resolver_version,
                    "indexes": list(r.indexes),
                    "torch-index": r.torch_index,
                    "find-links": list(r.find_links),
                    "constraints": list(r.constraints),
                    "site-config": r.site_config or None,
                    "index-strategy": r.index_strategy,
                    "requirements": list(r.requirements),
                    "base": dict(r.base) or None,
                }
            )
        if self.source:
            data["source"] = self.source.to_toml()
        if self.extension_sources:
            data["extension-sources"] = {k: v.to_toml() for k, v in sorted(self.extension_sources.items())}
        data["patches"] = [
            _drop_none({"root": p.root, "tree": p.tree, "name": p.name, "sha256": p.sha256}) for p in self.patches
        ]
        data["extensions"] = [{"name": e.name, "key": e.key} for e in self.extensions]
        return _drop_none(data)

    @classmethod
    def from_toml(cls, f: Fields) -> EnvbuilderPart:
        schema = f.integer("schema", required=True)
        if schema != SCHEMA:
            raise f.fail("schema", f"schema {schema} is not known to this envbuilder (it reads schema {SCHEMA})")
        recipe = f.table("recipe")
        target = f.table("target")
        toolchain = f.table("toolchain")
        torch = f.table("torch")
        res = f.table("resolution")
        ext_sources = f.table("extension-sources")
        return cls(
            envbuilder=f.string("envbuilder"),
            recipe=recipe.string("name") if recipe else None,
            variant=recipe.string("variant") if recipe else None,
            recipe_sha256=recipe.string("sha256", pattern=SHA256) if recipe else None,
            target=_target(target) if target else None,
            toolchain=Toolchain(
                toolchain.string("cuda"),
                toolchain.integer("gcc-major"),
                toolchain.string("python"),
                nvcc=toolchain.string("nvcc"),
                gcc=toolchain.string("gcc"),
                abi=toolchain.string("abi"),
            )
            if toolchain
            else None,
            archs=f.strings("archs"),
            torch=TorchExpectation(
                torch.string("version", required=True),
                cuda=torch.string("cuda"),
                variant=torch.string("variant"),
                index=torch.string("index"),
                packages=torch.str_map("packages"),
            )
            if torch
            else None,
            no_build_isolation=f.strings("no-build-isolation"),
            sdist_env={name: env.str_map(name) for name in env.data} if (env := f.table("sdist-env")) else {},
            provided=f.str_map("base-provides"),
            resolution=Resolution(
                resolver=res.string("resolver") or "uv",
                resolver_version=res.string("resolver-version"),
                indexes=res.strings("indexes"),
                torch_index=res.string("torch-index"),
                find_links=res.strings("find-links"),
                constraints=res.strings("constraints"),
                site_config=res.boolean("site-config"),
                index_strategy=res.string("index-strategy"),
                requirements=res.strings("requirements"),
                base=res.str_map("base"),
            )
            if res
            else None,
            source=Source.from_toml(s) if (s := f.table("source")) else None,
            extension_sources={k: Source.from_toml(Fields(v, ext_sources.key(k))) for k, v in ext_sources.data.items()}
            if ext_sources
            else {},
            patches=tuple(
                PatchRef(
                    p.string("root", required=True),
                    p.string("name", required=True),
                    p.string("sha256", required=True, pattern=SHA256),
                    tree=p.string("tree"),
                )
                for p in f.tables("patches")
            ),
            extensions=tuple(
                ExtensionRef(e.string("name", required=True), e.string("key", required=True))
                for e in f.tables("extensions")
            ),
        )


def _target(f: Fields) -> Target:
    try:
        return Target(f.string("python", required=True), f.string("platform", required=True))
    except InputError as exc:
        raise LockFileError(exc.message, file=None, key=f.path, hint=exc.hint) from None


# --- the lock ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    packages: tuple[LockedPackage, ...]
    envbuilder: EnvbuilderPart | None = None
    created_by: str = "envbuilder"
    requires_python: str | None = None
    environments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.packages, key=lambda p: p.name))
        object.__setattr__(self, "packages", ordered)

    def package(self, name: str) -> LockedPackage | None:
        wanted = canonicalize_name(name)
        return next((p for p in self.packages if p.name == wanted), None)

    @property
    def pins(self) -> dict[str, str]:
        return {p.name: p.version for p in self.packages}

    def without(self, names: Sequence[str]) -> Lock:
        drop = {canonicalize_name(n) for n in names}
        return replace(self, packages=tuple(p for p in self.packages if p.name not in drop))

    def only(self, names: Sequence[str]) -> Lock:
        keep = {canonicalize_name(n) for n in names}
        return replace(self, packages=tuple(p for p in self.packages if p.name in keep))

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"lock-version": "1.0"}
        if self.environments:
            data["environments"] = list(self.environments)
        if self.requires_python:
            data["requires-python"] = self.requires_python
        data["created-by"] = self.created_by
        data["packages"] = [p.to_toml() for p in self.packages]
        if self.envbuilder is not None:
            data["tool"] = {"envbuilder": self.envbuilder.to_toml()}
        return data

    @classmethod
    def from_toml(cls, data: object) -> Lock:
        f = Fields(data, "")
        version = f.string("lock-version", required=True)
        if not re.fullmatch(r"1(\.\d+)?", version):
            raise f.fail("lock-version", f"{version!r}: this envbuilder reads PEP 751 lock-version 1.x")
        packages = tuple(LockedPackage.from_toml(p) for p in f.tables("packages", required=True))
        seen: dict[str, int] = {}
        for i, p in enumerate(packages):
            if p.name in seen:
                raise LockFileError(
                    f"{p.name} is listed twice (also packages[{seen[p.name]}])", file=None, key=f"packages[{i}].name"
                )
            seen[p.name] = i
        tool = f.table("tool")
        part = tool.table("envbuilder") if tool else None
        return cls(
            packages,
            envbuilder=EnvbuilderPart.from_toml(part) if part else None,
            created_by=f.string("created-by", required=True),
            requires_python=f.string("requires-python"),
            environments=f.strings("environments"),
        )
