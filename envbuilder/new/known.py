"""What envbuilder already knows, as data with sources: fingerprints of the shared extensions it
ships (extensions/*/extension.yaml), the extensions that come from their own repositories, the
method-level patches `new` may propose, and the torch table every shipped recipe uses."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ApiCheck:
    """One fact about an extension's interface that envbuilder's probe relies on.

    kinds: namedtuple (a NamedTuple class's fields), params (a method's parameters), cpp-params
    (a C++ function's parameter count in a header), cpp-binding (a pybind11 m.def name)."""

    kind: str
    file: str  # relative to the extension's directory
    symbol: str  # Class, Class.method or a C++ function name
    needs: tuple[str, ...] = ()  # names that must exist (what the probe passes)
    allows: tuple[str, ...] = ()  # further required names the probe knows how to fill
    count: int | None = None  # cpp-params: how many parameters


@dataclass(frozen=True)
class Fingerprint:
    extension: str  # the shared extension (extensions/<name>/extension.yaml)
    modules: tuple[str, ...]  # the compiled module(s) its setup.py builds
    package: str | None  # setup(name=…)
    api: tuple[ApiCheck, ...]  # besides: the files envbuilder's own patches for it edit (fingerprint.py)
    source: str


def _probe_keywords(probe: str, callee: str) -> tuple[str, ...]:
    """The keyword arguments envbuilder's probe passes to `callee` (a call, or `dict(...)`
    assigned to the name): the interface it relies on, read from the probe itself so that the
    fingerprint cannot drift from what the probe does."""
    tree = ast.parse((Path(__file__).resolve().parent.parent / "probes" / probe).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            named = any(isinstance(t, ast.Name) and t.id == callee for t in node.targets)
            call = node.value
            if named or (isinstance(call.func, ast.Name) and call.func.id == callee):
                return tuple(sorted(k.arg for k in call.keywords if k.arg))
    raise LookupError(f"envbuilder/probes/{probe} makes no call to {callee}")


RASTERIZER_SETTINGS = _probe_keywords("probe_rasterizer.py", "GaussianRasterizationSettings")
RASTERIZER_INPUTS = _probe_keywords("probe_rasterizer.py", "kwargs")

FINGERPRINTS: tuple[Fingerprint, ...] = (
    Fingerprint(
        extension="diff-gaussian-rasterization",
        modules=("diff_gaussian_rasterization._C",),
        package="diff_gaussian_rasterization",
        api=(
            ApiCheck(
                "namedtuple",
                "diff_gaussian_rasterization/__init__.py",
                "GaussianRasterizationSettings",
                needs=RASTERIZER_SETTINGS,
            ),
            ApiCheck(
                "params",
                "diff_gaussian_rasterization/__init__.py",
                "GaussianRasterizer.forward",
                needs=RASTERIZER_INPUTS,
                allows=("sh_objs",),  # the probe passes it where forward takes it (Disco4D)
            ),
        ),
        source="envbuilder/probes/probe_rasterizer.py (what it passes); the reference rasterizer, its forks and "
        "Disco4D's copy share this interface (research/upstream.md §0)",
    ),
    Fingerprint(
        extension="simple-knn",
        modules=("simple_knn._C",),
        package="simple_knn",
        api=(
            ApiCheck("cpp-binding", "ext.cpp", "distCUDA2"),
            ApiCheck("cpp-params", "spatial.h", "distCUDA2", count=1),
        ),
        source="envbuilder/probes/probe_simple_knn.py calls distCUDA2(points); the simple-knn the 3DGS code bases pin (research/upstream.md)",
    ),
    Fingerprint(
        extension="gridencoder",
        modules=("_gridencoder",),
        package="gridencoder",
        api=(
            ApiCheck("cpp-binding", "src/bindings.cpp", "grid_encode_forward"),
            ApiCheck("cpp-binding", "src/bindings.cpp", "grid_encode_backward"),
            ApiCheck("cpp-params", "src/gridencoder.h", "grid_encode_forward", count=14),
            ApiCheck("cpp-params", "src/gridencoder.h", "grid_encode_backward", count=16),
        ),
        source="envbuilder/probes/probe_gridencoder.py (14 and 16 arguments); TalkingGaussian's torch-ngp copy",
    ),
)


@dataclass(frozen=True)
class KnownPackage:
    """A shared extension with its own source, which methods name as a requirement, a git URL
    in the README, or only by importing it."""

    extension: str
    dists: tuple[str, ...]
    git: tuple[str, ...]  # host/owner/name
    imports: tuple[str, ...]
    source: str


KNOWN_PACKAGES: tuple[KnownPackage, ...] = (
    KnownPackage(
        "pytorch3d", ("pytorch3d",), ("github.com/facebookresearch/pytorch3d",), ("pytorch3d",), "extensions/pytorch3d"
    ),
    KnownPackage("gsplat", ("gsplat",), ("github.com/nerfstudio-project/gsplat",), ("gsplat",), "extensions/gsplat"),
    KnownPackage("kaolin", ("kaolin",), ("github.com/nvidiagameworks/kaolin",), ("kaolin",), "extensions/kaolin"),
)


@dataclass(frozen=True)
class MethodPatch:
    """A method-level patch `new` proposes when its finder sees the bug in the tree. The patch's
    own engine then decides: it is attached only when it would change something (a tree that
    already has the fix gets nothing) and applies cleanly."""

    patch: str
    finder: str  # find-text: the patch's own find text/regex | unpacked-torch-load | pin-rule
    why: str


METHOD_PATCHES: tuple[MethodPatch, ...] = (
    MethodPatch("drop-tkinter-import", "find-text", "an unused `from tkinter import W` needs a Python built with Tk"),
    MethodPatch("pil-rgb-uint8", "find-text", "int8 RGB images that Pillow >= 12 refuses"),
    MethodPatch("deepspeech-numpy-aliases", "find-text", "np.int/np.unicode, removed in NumPy 1.24"),
    MethodPatch("deepspeech-numpy-float", "find-text", "np.float, removed in NumPy 1.24"),
    MethodPatch("mmcv-config-mmengine", "pin-rule", "mmcv.Config read through mmengine (rule mmcv-config)"),
    MethodPatch(
        "torch-load-trusted",
        "unpacked-torch-load",
        "a checkpoint tuple unpacked from torch.load, which torch >= 2.6 (weights_only) refuses when it holds numpy scalars",
    ),
)

# The torch table of every shipped recipe (recipes/4dgaussians.yaml says why each line is so).
TORCH_TABLE = (
    (
        "cu128",
        {
            "torch": "==2.9.1",
            "torchvision": "==0.24.1",
            "torchaudio": "==2.9.1",
            "index": "https://download.pytorch.org/whl/cu128",
        },
        "CUDA 12.8 builds from the PyTorch index; torch 2.9.1 is C++17, so extensions keep their defaults",
    ),
    (
        "cu130",
        {"torch": ">=2.11,<2.15", "torchvision": ">=0.26,<0.30", "torchaudio": ">=2.11,<2.15"},
        "PyPI's torch >= 2.11 is the CUDA 13.0 build; 2.11 (C++17) and 2.14 (C++20) were built by envbuilder",
    ),
)
TARGET_PYTHON = "3.12"  # what every shipped recipe runs on: the torch table has wheels for it
NEWEST_TORCH = "2.14.1"  # conditions and C++ standards are checked against the newest torch the table allows
NEWEST_CUDA = "13.0"
