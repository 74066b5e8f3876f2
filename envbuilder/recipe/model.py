"""Typed, frozen model of recipes, extensions and patches. Built once by the loader, then only read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from envbuilder.recipe.when import Condition


@dataclass(frozen=True, kw_only=True)
class Fallback:
    """A submodule commit to use when its gitlink's commit cannot be had (a mirror lacks it)."""

    path: str
    commit: str
    why: str


@dataclass(frozen=True, kw_only=True)
class GitSource:
    url: str
    commit: str  # full 40-hex hash
    submodules: bool = True
    branch: str | None = None  # informational: a branch that holds the commit
    note: str | None = None  # e.g. what to do when a mirror lacks the commit
    fallbacks: tuple[Fallback, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "git": self.url,
            "commit": self.commit,
            "submodules": self.submodules,
            "branch": self.branch,
            "fallbacks": [{"path": f.path, "commit": f.commit, "why": f.why} for f in self.fallbacks],
        }


@dataclass(frozen=True, kw_only=True)
class PathSource:
    path: Path  # absolute; relative paths in YAML are relative to the recipe file

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path)}


Source = GitSource | PathSource


@dataclass(frozen=True, kw_only=True)
class TorchVariant:
    """The torch stack for one CUDA build, e.g. tag cu130 -> CUDA 13.0."""

    tag: str
    cuda: Version
    packages: tuple[tuple[str, str], ...]  # (name, specifier) for torch, torchvision, torchaudio
    index: str | None = None  # None: the default index (PyPI)

    def requirements(self) -> list[str]:
        return [f"{name}{spec}" for name, spec in self.packages]

    @property
    def torch_spec(self) -> SpecifierSet:
        return SpecifierSet(dict(self.packages)["torch"])

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "cuda": str(self.cuda), "requirements": self.requirements(), "index": self.index}


# the sdist_env of a recipe's requirements, by normalized name: ((name, ((VAR, value), ...)), ...)
SdistEnv = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@dataclass(frozen=True, kw_only=True)
class Requirement:
    text: str  # PEP 508
    when: Condition | None = None
    why: str | None = None
    no_build_isolation: bool = False  # e.g. chumpy, whose setup.py imports pip
    # variables the installer sets while it builds this sdist; "{site}" is the env's site-packages
    # (pysdf finds Eigen only through CPLUS_INCLUDE_PATH, from a headers wheel installed first)
    sdist_env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Patch:
    """patches/<name>.yaml: one reusable source fix, identified by the sha256 of its content."""

    name: str
    file: Path
    sha256: str  # of the YAML and, for a diff, of the diff file: part of the build's identity
    summary: str
    fixes: str  # the diagnose signature id it cures (envbuilder/diagnose/signatures.yaml)
    kind: str  # include | cxx-standard | replace | diff
    files: tuple[str, ...] = ()  # globs relative to the root it is applied to
    when: Condition | None = None
    header: str | None = None  # include: the header to add
    satisfied_by: tuple[str, ...] = ()  # include: headers that already provide it
    standard: str = "auto"  # cxx-standard: "auto" (what the installed torch needs) or c++17/c++20
    find: str | None = None  # replace
    replace: str | None = None
    regex: bool = False
    count: int = 1  # replace: matches expected in each file (counts overrides it per file)
    counts: tuple[tuple[str, int], ...] = ()
    check: str | None = None  # replace: text whose presence means "already applied"
    diff: Path | None = None  # diff: the unified diff file
    strip: int = 1


@dataclass(frozen=True, kw_only=True)
class PatchUse:
    """A recipe's or extension's use of a patch, optionally with its own files or condition."""

    patch: Patch
    files: tuple[str, ...] = ()  # overrides patch.files when given
    when: Condition | None = None  # overrides patch.when when given

    @property
    def name(self) -> str:
        return self.patch.name

    @property
    def targets(self) -> tuple[str, ...]:
        return self.files or self.patch.files

    @property
    def condition(self) -> Condition | None:
        return self.when if self.when is not None else self.patch.when


@dataclass(frozen=True, kw_only=True)
class Extension:
    """extensions/<name>/extension.yaml: a CUDA extension reused across methods."""

    name: str
    file: Path
    sha256: str  # of the YAML file: part of the build's identity
    summary: str
    import_name: str  # module that must import after the build
    build_requires: tuple[str, ...] = ("setuptools", "wheel", "ninja")
    # what the built package imports at run time: its wheel installs with --no-deps (so pip cannot
    # swap torch), hence these are installed with the env's requirements
    requires: tuple[str, ...] = ()
    probe: str | None = None  # envbuilder/probes/probe_<probe>.py, run in the env
    patches: tuple[PatchUse, ...] = ()  # applied with the extension's directory as root
    license: str | None = None
    source: GitSource | None = None  # its own repository (pytorch3d …); else a path in the method's tree
    build_env: tuple[tuple[str, str], ...] = ()  # e.g. FORCE_CUDA=1


@dataclass(frozen=True, kw_only=True)
class ExtensionUse:
    """A recipe's use of an extension: which extension, where its setup.py sits in the source tree."""

    extension: Extension
    path: str  # relative to the method's source root, or to the extension's own source
    when: Condition | None = None

    @property
    def name(self) -> str:
        return self.extension.name


ASSET_KINDS = (
    "file",  # only presence, size, checksum and "not an HTML page"
    "flame-pkl",  # FLAME model pickle (plain or chumpy)
    "bfm-mat",  # Basel Face Model 2009 .mat
    "smplx-model",  # SMPL-X .npz/.pkl
    "smpl-model",  # SMPL .pkl
    "torch-checkpoint",  # .pth/.pt/.ckpt/.tar saved by torch
    "safetensors",
    "numpy",  # .npy/.npz
    "zip",
    "tensorflow-graph",  # frozen .pb
    "smplx-j14-regressor",  # SMPLX_to_J14.pkl: a pickled 14 x 10475 array
    "smplx-mano-vertex-ids",  # MANO_SMPLX_vertex_ids.pkl: {left_hand, right_hand} vertex ids
    "smplx-flame-vertex-ids",  # SMPL-X__FLAME_vertex_ids.npy: 5023 vertex ids
)
# stand-in writers for checkpoints that are built from code, not from a file layout
# (envbuilder/assets/standin_weights.py): what an asset's `stand_in:` may name
STAND_IN_WRITERS = ("cap4d-mmdm", "torchvision-vgg16", "torchvision-alexnet", "lpips-vgg")


@dataclass(frozen=True, kw_only=True)
class Asset:
    """A file the method needs that the build does not produce: a licensed model, weights, data."""

    name: str
    path: str  # where the code reads it: relative to the source root, or ~/… for the home dir
    kind: str  # one of ASSET_KINDS: picks the structural validator
    gated: bool  # needs registration / a licence click: never downloaded by envbuilder
    source: str  # where to get it (page or URL)
    register: str | None = None  # the registration page, for gated assets
    license: str | None = None
    url: str | None = None  # a direct download (free assets only)
    archive: str | None = None  # the file users download when the asset comes inside it
    member: str | None = None  # the asset's path inside that archive
    sha256: str | None = None
    sha1: str | None = None
    git_blob: str | None = None  # `git hash-object` of the file, where it is only known from a git tree
    size: int | None = None  # bytes, where published
    needed_by: tuple[str, ...] = ()  # smoke steps (or "preprocess") that cannot run without it
    variant: str | None = None  # e.g. FLAME 2023-no-jaw; checked by the validator
    note: str | None = None
    stand_in: str | None = None  # one of STAND_IN_WRITERS: how `--stub-assets` builds a stand-in


@dataclass(frozen=True, kw_only=True)
class SmokeStep:
    name: str
    run: tuple[str, ...]  # argv; {data}, {out}, {src}, {python}, {prefix}, {probes} are filled in
    cwd: str = "."  # relative to the source root, or starting with a placeholder ({data})
    env: tuple[tuple[str, str], ...] = ()
    timeout: int = 900
    needs: tuple[str, ...] = ()  # asset names
    outputs: tuple[str, ...] = ()  # globs (relative to cwd, placeholders allowed) that must exist after
    images: str | None = None  # a folder of rendered PNGs: not constant, no NaN
    ground_truth: str | None = None  # the matching ground-truth PNGs, for PSNR
    psnr_floor: float | None = None  # PSNR the renders must reach (and beat blank frames)
    loss: str | None = None  # regex with one group: the loss in the step's log, which must fall
    measure: tuple[tuple[str, str], ...] = ()  # name -> regex with one group: last match in the log (it/s, FPS)
    rewrites: tuple[str, ...] = ()  # assets the step converts in place (their new bytes are trusted after it)


@dataclass(frozen=True, kw_only=True)
class SmokeFile:
    """A file written into the source tree before the smoke run (e.g. a short config): either our
    own text, or a copy of a file of the tree with exact replacements (each must match once)."""

    path: str
    text: str | None = None
    copy_of: str | None = None
    replace: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Smoke:
    data: str | None  # envbuilder's synthetic data generator (envbuilder/datasets), or None
    steps: tuple[SmokeStep, ...]
    files: tuple[SmokeFile, ...] = ()
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    file: Path
    sha256: str
    summary: str
    source: Source
    python: SpecifierSet
    torch: tuple[TorchVariant, ...]
    requirements: tuple[Requirement, ...] = ()
    extensions: tuple[ExtensionUse, ...] = ()
    patches: tuple[PatchUse, ...] = ()  # applied with the source root as root
    env: tuple[tuple[str, str], ...] = ()
    license: str | None = None
    envbuilder: SpecifierSet | None = None
    assets: tuple[Asset, ...] = ()
    smoke: Smoke | None = None
    notes: str | None = None  # what the recipe can and cannot build, shown by `show`

    def torch_variant(self, tag: str) -> TorchVariant | None:
        return next((v for v in self.torch if v.tag == tag), None)
