"""Known error signatures in build and run logs -> cause and fix.

Sources: ../shared/research/anchors.md §10 and blackwell.md §5 (each entry names its origin).
`command` is set where envbuilder itself can apply the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envbuilder.errors import InputError


@dataclass(frozen=True)
class Signature:
    id: str
    pattern: str | None  # a regex, matched per line (case-sensitive unless it says (?i)); None: never in logs
    cause: str
    fix: str
    command: str | None = None
    source: str = ""


@dataclass(frozen=True)
class Finding:
    signature: Signature
    line_number: int
    line: str

    @property
    def cause(self) -> str:
        return self.signature.cause

    @property
    def fix(self) -> str:
        return self.signature.fix

    def to_json(self) -> dict[str, str]:
        s = self.signature
        return {
            "id": s.id,
            "line": str(self.line_number),
            "text": self.line.strip()[:300],
            "cause": s.cause,
            "fix": s.fix,
            "command": s.command or "",
            "source": s.source,
        }


CATALOGUE: tuple[Signature, ...] = (
    Signature(
        "no-kernel-image",
        r"no kernel image is available for execution on the device",
        "torch or an extension holds neither SASS for this GPU nor PTX the driver can JIT.",
        "use torch >= 2.7 built for CUDA 12.8+ and rebuild every extension with TORCH_CUDA_ARCH_LIST set to the GPU's arch; "
        "check a .so with `envbuilder inspect`.",
        "envbuilder build RECIPE --arch 12.0",
        "anchors §10 #1; gsplat#1053",
    ),
    Signature(
        "torch-gpu-unsupported",
        r"with CUDA capability sm_\d+ is not compatible with the current PyTorch installation",
        "the installed torch wheel was built without this GPU's arch (e.g. a CUDA 12.6 build on an RTX 50xx).",
        "install torch >= 2.7 from the cu128 index, or torch >= 2.11 (CUDA 13.0) from PyPI.",
        "envbuilder build RECIPE --arch 12.0",
        "anchors §10 #2; pytorch#150733",
    ),
    Signature(
        "nvcc-unsupported-arch",
        r"nvcc fatal\s*:\s*Unsupported gpu architecture '(compute|sm)_\d+[af]?'",
        "nvcc does not know the requested arch: sm_120 needs CUDA >= 12.8 (120f: 12.9), and CUDA 13 dropped everything below sm_75.",
        "use a toolkit that supports every arch in the list, or drop the old archs.",
        "envbuilder doctor --arch 12.0",
        "bw §5; anchors §10 #3",
    ),
    Signature(
        "torch-unknown-arch",
        r"ValueError: Unknown CUDA arch \(([^)]*)\) or GPU not supported",
        "torch's cpp_extension does not know an arch in TORCH_CUDA_ARCH_LIST (too old a torch, or an 'f' arch, which torch never accepts).",
        "use torch >= 2.7 for 12.0; write 12.0 or 12.0+PTX instead of 12.0f.",
        None,
        "bw §2; anchors §10 #4",
    ),
    Signature(
        "flt-max-undefined",
        r"identifier \"FLT_MAX\" is undefined|'FLT_MAX' was not declared",
        "CUDA 12.5+ headers no longer pull in <cfloat>; the source uses FLT_MAX without including it (simple-knn).",
        "add #include <cfloat> to the file (the cfloat patch).",
        "envbuilder patch RECIPE --source DIR --apply",
        "bw §5; gaussian-splatting#1296",
    ),
    Signature(
        "cstdint-missing",
        r"namespace \"std\" has no member \"uintptr_t\"|identifier \"u?int(8|16|32|64)_t\" is undefined|'u?int(8|16|32|64)_t' (has not been declared|does not name a type|was not declared)",
        "GCC 13 no longer includes <cstdint> transitively; the header uses fixed-width integers without it (rasterizer_impl.h).",
        "add #include <cstdint> to the header (the cstdint patch).",
        "envbuilder patch RECIPE --source DIR --apply",
        "bw §5; gaussian-splatting#788",
    ),
    Signature(
        "cxx17-required",
        r"C\+\+17 or later compatible compiler is required|You need C\+\+17 to compile PyTorch",
        "a setup.py forces -std=c++14, but torch 2.x headers need C++17.",
        "replace -std=c++14 with the standard torch needs (the cxx-standard patch).",
        "envbuilder patch RECIPE --source DIR --apply",
        "bw §2; anchors §10 #7",
    ),
    Signature(
        "cxx20-required",
        r"C\+\+20 or later compatible compiler is required",
        "torch >= 2.13 headers need C++20, and something forces an older -std.",
        "replace the forced -std with c++20 (the cxx-standard patch does this for torch >= 2.13).",
        "envbuilder patch RECIPE --source DIR --apply",
        "bw §2",
    ),
    Signature(
        "cccl-needs-cpp17",
        r"(Thrust|CUB) requires at least C\+\+17|libcu\+\+ requires at least C\+\+ ?17",
        "CUDA 13's Thrust/CUB/libcu++ need C++17, and the build forces an older standard.",
        "remove the forced -std=c++14 (the cxx-standard patch).",
        "envbuilder patch RECIPE --source DIR --apply",
        "bw §1",
    ),
    Signature(
        "cuda-version-mismatch",
        r"The detected CUDA version \(?%?s?.*mismatches the version that was used to compile\s*PyTorch",
        "nvcc's CUDA major differs from the CUDA torch was built with.",
        "use a toolkit with torch's CUDA major (envbuilder build --cuda X.Y), or a torch built for your nvcc.",
        "envbuilder plan RECIPE --arch 12.0 --cuda 13.0",
        "bw §2; anchors §10 #8",
    ),
    Signature(
        "gcc-too-new",
        r"unsupported GNU version! gcc versions later than (\d+) are not supported",
        "the host gcc is newer than this nvcc accepts (12.8/12.9: gcc <= 14; 13.0: gcc <= 15).",
        "install an older g++-N (envbuilder picks it from PATH) or use a newer CUDA; -allow-unsupported-compiler is a last resort.",
        None,
        "bw §1; anchors §10 #9",
    ),
    Signature(
        "torch-gcc-window",
        r"The current installed version of g\+\+ \(.*\) is greater than the maximum required version by CUDA",
        "torch's own gcc window for this CUDA is stricter than nvcc's (torch 2.11: gcc < 14 for CUDA 12.8).",
        "use an older g++ (CXX=g++-13), or set TORCH_DONT_CHECK_COMPILER_ABI=1 if you accept the risk.",
        None,
        "bw §1",
    ),
    Signature(
        "build-isolation-no-torch",
        r"No module named 'torch'",
        "the extension was built in an isolated environment that lacks torch (PEP 517 build isolation).",
        "build with --no-build-isolation against the env's torch (envbuilder always does).",
        None,
        "anchors §10 #10; uv#12846",
    ),
    Signature(
        "pkg-resources-missing",
        r"No module named 'pkg_resources'",
        "setuptools >= 82 removed pkg_resources, and an old setup.py (mmcv 1.x) imports it.",
        "pin setuptools<82 in the build tools, or patch the import out.",
        None,
        "bw §5; anchors §10 #11",
    ),
    Signature(
        "pkgutil-impimporter",
        r"module 'pkgutil' has no attribute 'ImpImporter'",
        "Python 3.12 removed pkgutil.ImpImporter, which old pkg_resources (setuptools < 66.1) and old pip use.",
        "upgrade pip and use setuptools >= 66.1 (and < 82 if pkg_resources is needed).",
        None,
        "bw §5",
    ),
    Signature(
        "distutils-missing",
        r"No module named 'distutils'",
        "Python 3.12 removed distutils; an old setup.py imports it.",
        "install setuptools (it provides a distutils shim) and build without isolation.",
        None,
        "bw §5",
    ),
    Signature(
        "thrust-sequence",
        r"namespace \"thrust\" has no member \"sequence\"",
        "a missing #include <thrust/sequence.h> that older CCCL pulled in transitively.",
        "add #include <thrust/sequence.h>.",
        None,
        "anchors §10 #12",
    ),
    Signature(
        "cub-thrust-mismatch",
        r"The version of CUB in your include path is not compatible with this release of Thrust",
        "stale cub/thrust headers (a conda env, CUB_HOME) shadow the toolkit's CCCL.",
        "remove the extra cub/thrust include paths (unset CUB_HOME, CPATH).",
        None,
        "anchors §10 #13",
    ),
    Signature(
        "not-installable",
        r"Neither 'setup.py' nor 'pyproject.toml' found",
        "a submodule directory is empty: the repository was cloned without its submodules.",
        "check out submodules at their gitlinks (envbuilder's sources step does).",
        None,
        "anchors §10 #14",
    ),
    Signature(
        "arch-specific-instruction",
        r"Instruction '[^']+' not supported on \.target 'sm_\d+'",
        "kernels written for an arch-specific target (sm_90a) were compiled for another arch.",
        "leave those kernels out of this arch's list; do not add 12.0 to lists meant for 9.0a.",
        None,
        "anchors §10 #15",
    ),
    Signature(
        "arch-list-unset",
        r"TORCH_CUDA_ARCH_LIST is not set, all archs for visible cards are included",
        "the extension's arch came from the build machine's GPUs, which may not be the GPU that runs it.",
        "set TORCH_CUDA_ARCH_LIST explicitly (envbuilder sets it from --arch).",
        None,
        "anchors §10 #16",
    ),
    Signature(
        "arch-list-no-gpu",
        r"arch_list\[-1\] \+= '\+PTX'",
        "TORCH_CUDA_ARCH_LIST is unset and no GPU is visible, so torch has no arch to build for.",
        "set TORCH_CUDA_ARCH_LIST (envbuilder sets it from --arch).",
        None,
        "bw §2; pixtrack#13",
    ),
    Signature(
        "out-of-memory-build",
        r"Killed signal terminated program|(c\+\+|g\+\+|gcc|cc1plus|nvcc|cicc|ptxas).*(fatal error|error).*\bKilled\b",
        "a compiler process was killed, usually for lack of memory with too many parallel jobs.",
        "build with fewer jobs (envbuilder build --jobs 1).",
        "envbuilder build RECIPE --jobs 1",
        "anchors §10 #17",
    ),
    Signature(
        "cuda-home-unset",
        r"CUDA_HOME environment variable is not set",
        "torch.utils.cpp_extension found no CUDA toolkit (or torch is a CPU-only build, which forces CUDA_HOME to None).",
        "set CUDA_HOME to a toolkit with torch's CUDA major, and use a CUDA build of torch.",
        None,
        "bw §2; anchors §10 #18",
    ),
    Signature(
        "nvcc-not-found",
        r"nvcc not found at",
        "CUDA_HOME points at a folder without bin/nvcc.",
        "point CUDA_HOME at a real toolkit (envbuilder resolves nvcc wrappers to it).",
        None,
        "bw §2",
    ),
    Signature(
        "cannot-find-cudart",
        r"cannot find -lcudart",
        "CUDA_HOME has no unversioned libcudart.so: a pip-wheel toolkit, or /usr/local chosen because of a wrapper nvcc in /usr/local/bin.",
        "set CUDA_HOME to the real toolkit, or add lib/libcudart.so -> libcudart.so.13.",
        None,
        "bw §3",
    ),
    Signature(
        "cuda13-template-stub-linkage",
        r"hidden symbol `[^']+' isn't defined",
        "CUDA 13 nvcc gives __global__ template host stubs internal linkage; a kernel template instantiated in one .cu and launched from another no longer links (PyTorch3D pulsar).",
        "compile with nvcc -static-global-template-stub=false (the nvcc-template-stub patch for PyTorch3D; NVCC_APPEND_FLAGS elsewhere).",
        "envbuilder patch RECIPE --source DIR --apply",
        "pytorch3d#1998, #2011; NVIDIA blog 'CUDA C++ Compiler Updates Impacting ELF Visibility and Linkage'",
    ),
    Signature(
        "cuda-library-header-missing",
        r"fatal error: (cusparse|cublas_v2|cublas|cublasLt|cusolverDn|curand|cufft|cudnn|nccl)\.h: No such file",
        "the CUDA toolkit has no math-library headers (a minimal or PyPI-assembled toolkit); ATen/cuda headers include them.",
        "install the full toolkit, or the nvidia-* header wheels matching torch; envbuilder adds torch's nvidia wheel include dirs to CPATH.",
        None,
        "seen building gridencoder against a PyPI-assembled CUDA 13.0",
    ),
    Signature(
        "mmcv-config-moved",
        r"module 'mmcv' has no attribute 'Config'|No module named 'mmcv'",
        "the code uses mmcv.Config, which mmcv 2.x moved to mmengine.Config; mmcv 1.x does not build on Python 3.12 with setuptools >= 82.",
        "read the config with mmengine.Config (the recipe's mmcv-config-mmengine patch).",
        None,
        "research/upstream.md §4.2, §5.2",
    ),
    Signature(
        "iteration-window",
        r"ZeroDivisionError: (float )?division by zero",
        "hard-coded iteration windows (TalkingGaussian: mouth_select_iter = iterations - 10000) divide by zero for some --iterations.",
        "use another --iterations (not 10000 for train_face, not 11000 for train_mouth).",
        None,
        "research/upstream.md §1.5",
    ),
    Signature(
        "smoke-blocker",
        None,
        "upstream code hard-codes a value (an iteration count, a save list) that keeps a short smoke run from finishing.",
        "the recipe's patch makes the value configurable and keeps the upstream default.",
        None,
        "research/upstream.md §1.5, §4.3, §5.4",
    ),
    Signature(
        "glibc-cospi",
        r"exception specification is incompatible with that of previous function \"(cospi|sinpi|rsqrt)",
        "glibc >= 2.41 clashes with CUDA 12.8/12.9's math_functions.h.",
        "use CUDA 13, or a patched math_functions.h.",
        None,
        "bw §1",
    ),
    Signature(
        "weights-only-load",
        r"Weights only load failed",
        "torch >= 2.6 loads checkpoints with weights_only=True; this checkpoint pickles other objects (e.g. numpy scalars).",
        "pass weights_only=False for trusted files (the recipe's torch.load patch), or set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1.",
        None,
        "bw §5",
    ),
    Signature(
        "no-tkinter",
        r"No module named '_?tkinter'",
        "this Python was built without Tk (no python3-tk / tk-dev when it was compiled; usual on servers, in containers and in many pyenv or uv Pythons), and the method imports tkinter.",
        "where the import is unused, the recipe's patch drops it (4DGaussians: drop-tkinter-import); else install Tk (apt install python3-tk, or tk-dev and rebuild the pyenv Python).",
        None,
        "4DGaussians scene/deformation.py:5 (from tkinter import W, unused); seen on the H100 test machine",
    ),
    Signature(
        "pil-int8-rgb",
        r"Cannot handle this data type: \(1, 1, 3\), \|i1",
        "Pillow 12 no longer reads signed-byte (int8) arrays as RGB; 3DGS Blender/D-NeRF readers build images with dtype=np.byte.",
        "the recipe's pil-rgb-uint8 patch makes it uint8 (same pixels); or pin pillow<12.",
        None,
        "4DGaussians scene/dataset_readers.py:287; Pillow 11.3 accepts it, 12.0 refuses (checked here)",
    ),
    Signature(
        "numpy-alias",
        r"module 'numpy' has no attribute '(bool|int|float|complex|object|str|unicode)'|cannot import name '(bool|int|float|complex|object|unicode|str)' from 'numpy'",
        "NumPy 1.24 removed the np.bool/np.int/np.float… aliases that old code (chumpy, DeepSpeech features) uses.",
        "patch the aliases to the builtins (or np.bool_), or convert chumpy pickles once.",
        None,
        "bw §5; anchors §10 #20",
    ),
    Signature(
        "inspect-getargspec",
        r"module 'inspect' has no attribute 'getargspec'",
        "Python 3.11 removed inspect.getargspec; chumpy calls it.",
        "patch chumpy to use getfullargspec, or convert the pickle to plain numpy once.",
        None,
        "bw §5; chumpy#57",
    ),
    Signature(
        "bool-subtraction",
        r"Subtraction, the `?-`? operator, with a bool tensor is not supported",
        "old torchgeometry code subtracts bool tensors, which torch no longer allows.",
        "patch `1 - mask` to `~mask` in torchgeometry.",
        None,
        "anchors §10 #21",
    ),
    Signature(
        "gated-asset-missing",
        r"(?i)(No such file or directory|FileNotFoundError|does not exist).*(flame|smpl|01_MorphableModel|BFM)",
        "a licensed model file (FLAME, SMPL-X, BFM) is missing; no script may download it.",
        "register, download it by hand and place it where `envbuilder assets RECIPE` says.",
        "envbuilder assets RECIPE",
        "anchors §10 #19",
    ),
    Signature(
        "unsupported-ptx-toolchain",
        r"the provided PTX was compiled with an unsupported toolchain",
        "the driver is older than the nvcc that produced the PTX, so it cannot JIT it.",
        "update the NVIDIA driver (Blackwell needs R570+), or build SASS for the GPU's arch.",
        None,
        "bw §1",
    ),
)


def scan(text: str) -> list[Finding]:
    """Every catalogue entry that matches, in catalogue order, first matching line each."""
    lines = text.splitlines()
    findings = []
    for sig in CATALOGUE:
        if sig.pattern is None:
            continue
        regex = re.compile(sig.pattern)
        for number, line in enumerate(lines, 1):
            if regex.search(line):
                findings.append(Finding(sig, number, line))
                break
    return findings


def scan_file(path: Path) -> list[Finding]:
    try:
        return scan(path.read_text(errors="replace"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
