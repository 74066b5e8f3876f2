"""Compatibility rules between GPU arch, CUDA toolkit, host gcc and torch.

Every table is data with its source (../shared/research/blackwell.md, "bw §N"); every check
returns a CompatError whose hint says what to change. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from packaging.version import Version

from envbuilder.errors import CompatError, InputError


@dataclass(frozen=True)
class ArchInfo:
    products: str
    min_cuda: str
    max_cuda: str | None = None  # last toolkit that still compiles it
    min_torch: str | None = None  # first torch whose TORCH_CUDA_ARCH_LIST accepts it
    suffixes: str = ""  # which of 'a' (arch-specific) / 'f' (family) exist


# Sources: bw §1 table (ptxas --help of 12.8, 12.9, 13.0); CUDA 13.0 drops sm_50..sm_72 and
# renames sm_101 to sm_110 (bw §1); torch arch whitelist per release (bw §2).
ARCHES: dict[str, ArchInfo] = {
    "3.5": ArchInfo("Kepler (K40)", "5.0", max_cuda="11.8"),
    "3.7": ArchInfo("Kepler (K80)", "5.0", max_cuda="11.8"),
    "5.0": ArchInfo("Maxwell", "6.0", max_cuda="12.9"),
    "5.2": ArchInfo("Maxwell (GTX 9xx)", "6.5", max_cuda="12.9"),
    "5.3": ArchInfo("Maxwell (Jetson TX1)", "6.5", max_cuda="12.9"),
    "6.0": ArchInfo("Pascal (P100)", "8.0", max_cuda="12.9"),
    "6.1": ArchInfo("Pascal (GTX 10xx)", "8.0", max_cuda="12.9"),
    "6.2": ArchInfo("Pascal (Jetson TX2)", "8.0", max_cuda="12.9"),
    "7.0": ArchInfo("Volta (V100)", "9.0", max_cuda="12.9"),
    "7.2": ArchInfo("Volta (Xavier)", "10.0", max_cuda="12.9"),
    "7.5": ArchInfo("Turing (RTX 20xx, T4)", "10.0"),
    "8.0": ArchInfo("Ampere (A100)", "11.0"),
    "8.6": ArchInfo("Ampere (RTX 30xx, A6000)", "11.1"),
    "8.7": ArchInfo("Ampere (Jetson Orin)", "11.4"),
    "8.8": ArchInfo("sm_88", "13.0"),
    "8.9": ArchInfo("Ada (RTX 40xx, L4, L40)", "11.8"),
    "9.0": ArchInfo("Hopper (H100, H200)", "11.8", suffixes="a"),
    "10.0": ArchInfo("Blackwell (B200, GB200)", "12.8", min_torch="2.7", suffixes="af"),
    "10.1": ArchInfo("Blackwell (Thor, CUDA 12 name)", "12.8", max_cuda="12.9", min_torch="2.7", suffixes="a"),
    "10.3": ArchInfo("Blackwell Ultra (B300)", "12.9", min_torch="2.8", suffixes="af"),
    "11.0": ArchInfo("Blackwell (Thor)", "13.0", min_torch="2.9", suffixes="af"),
    "12.0": ArchInfo("Blackwell (RTX 50xx, RTX PRO 6000)", "12.8", min_torch="2.7", suffixes="af"),
    "12.1": ArchInfo("Blackwell (DGX Spark GB10)", "12.9", min_torch="2.8", suffixes="af"),
}

# Newest host gcc major each toolkit accepts: the #error in include/crt/host_config.h (bw §1,
# verified for 12.8, 12.9, 13.0; older rows from the issues cited in bw §5).
GCC_MAX: tuple[tuple[str, int], ...] = (
    ("11.1", 9),  # CUDA < 11.1
    ("11.4", 10),
    ("12.0", 11),
    ("12.4", 12),
    ("12.8", 13),
    ("13.0", 14),
)
GCC_MAX_NEWEST = 15  # CUDA 13.x
GCC_MIN = 9  # c10/util/C++17.h: "We need GCC 9 or later." (bw §2)

# C++ standard torch's headers demand (bw §2: 2.x needs C++17; 2.13 defaults to and 2.14 requires C++20).
CXX_STANDARD: tuple[tuple[str, str], ...] = (("2.0", "c++14"), ("2.13", "c++17"))
CXX_STANDARD_NEWEST = "c++20"

# Torch releases (used to tell whether a recipe's torch specifier admits one that knows an arch).
TORCH_RELEASES = tuple(
    Version(v)
    for v in (
        "1.12.1",
        "1.13.1",
        "2.0.1",
        "2.1.2",
        "2.2.2",
        "2.3.1",
        "2.4.1",
        "2.5.1",
        "2.6.0",
        "2.7.1",
        "2.8.0",
        "2.9.1",
        "2.10.0",
        "2.11.0",
        "2.12.0",
        "2.13.0",
        "2.14.1",
        "2.15.0",
    )
)

# CUDA build of the torch wheels on PyPI (bw §2). Newer releases keep the last row.
PYPI_TORCH_CUDA: tuple[tuple[str, str], ...] = (("2.7", "12.4"), ("2.8", "12.6"), ("2.11", "12.8"))
PYPI_TORCH_CUDA_NEWEST = "13.0"


@dataclass(frozen=True, order=True)
class Arch:
    """One entry of --arch: 12.0, 12.0a, 12.0f, optionally +PTX."""

    major: int
    minor: int
    suffix: str = ""
    ptx: bool = False

    @property
    def base(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def sm(self) -> int:
        return self.major * 10 + self.minor

    @property
    def version(self) -> Version:
        return Version(self.base)

    @property
    def info(self) -> ArchInfo:
        return ARCHES[self.base]

    def __str__(self) -> str:
        return f"{self.base}{self.suffix}" + ("+PTX" if self.ptx else "")


_ARCH_RE = re.compile(
    r"^(?:(?P<dotted>(?P<maj>\d{1,2})\.(?P<min>\d))|(?:sm_|compute_)?(?P<sm>\d{2,3}))(?P<sfx>[af]?)(?P<ptx>\+ptx)?$",
    re.IGNORECASE,
)


def parse_arch(text: str) -> Arch:
    """Parse '12.0', '120', 'sm_120', '12.0a', '12.0+PTX'. Unknown archs are InputErrors."""
    match = _ARCH_RE.match(text.strip())
    if not match:
        raise InputError(
            f"'{text}' is not a CUDA arch",
            hint="write compute capabilities like 12.0 (RTX 50xx), 9.0 (H100) or 8.6 (RTX 30xx); "
            "separate several with ';' as in \"9.0;12.0\"",
        )
    if match["dotted"]:
        major, minor = int(match["maj"]), int(match["min"])
    else:
        major, minor = divmod(int(match["sm"]), 10)
    arch = Arch(major, minor, (match["sfx"] or "").lower(), bool(match["ptx"]))
    if arch.base not in ARCHES:
        raise InputError(
            f"unknown CUDA arch '{text}' (compute capability {arch.base} does not exist)",
            hint=f"known archs: {', '.join(ARCHES)}. An RTX 50xx card is 12.0.",
        )
    if arch.suffix and arch.suffix not in arch.info.suffixes:
        raise InputError(f"arch {arch.base} has no '{arch.suffix}' variant", hint=f"use {arch.base}")
    return arch


def parse_arch_list(text: str) -> tuple[Arch, ...]:
    parts = [p for p in re.split(r"[;,\s]+", text.strip()) if p]
    if not parts:
        raise InputError("--arch is empty", hint='give one or more archs, e.g. --arch 12.0 or --arch "9.0;12.0"')
    archs = sorted({parse_arch(p) for p in parts})
    return tuple(archs)


def torch_arch_list(archs: tuple[Arch, ...]) -> str:
    """The value of TORCH_CUDA_ARCH_LIST for these archs."""
    return ";".join(str(a) for a in archs)


T = TypeVar("T")


def _lookup(table: tuple[tuple[str, T], ...], newest: T, version: Version) -> T:
    """The value of the first row whose bound is above version (rows read "below X: value")."""
    for bound, value in table:
        if version < Version(bound):
            return value
    return newest


def gcc_max(cuda: Version) -> int:
    return _lookup(GCC_MAX, GCC_MAX_NEWEST, cuda)


def cxx_standard(torch: Version) -> str:
    return _lookup(CXX_STANDARD, CXX_STANDARD_NEWEST, Version(torch.base_version))


def pypi_torch_cuda(torch: Version) -> str:
    return _lookup(PYPI_TORCH_CUDA, PYPI_TORCH_CUDA_NEWEST, Version(torch.base_version))


def cuda_problems(archs: tuple[Arch, ...], cuda: Version) -> list[CompatError]:
    """Why this toolkit cannot compile these archs (empty when it can)."""
    problems = []
    for arch in archs:
        info = arch.info
        needs = Version(info.min_cuda)
        if arch.suffix == "f" and needs < Version("12.9"):
            needs = Version("12.9")  # family targets are new in CUDA 12.9 (bw §1)
        if cuda < needs:
            problems.append(
                CompatError(
                    f"arch {arch} ({info.products}) needs CUDA >= {needs}, but nvcc is {cuda}",
                    hint=f"install CUDA {needs} or newer and pass --cuda {needs}"
                    + (" (Blackwell needs CUDA 12.8+ and driver R570+)" if arch.major >= 10 else ""),
                )
            )
        elif info.max_cuda and cuda > Version(info.max_cuda + ".999"):
            problems.append(
                CompatError(
                    f"arch {arch} ({info.products}) is not supported by CUDA {cuda}: "
                    f"the last toolkit that compiles it is {info.max_cuda}",
                    hint=f"use CUDA <= {info.max_cuda} (--cuda {info.max_cuda}) or drop {arch} from --arch"
                    + (" (CUDA 13 starts at sm_75)" if arch.sm < 75 else ""),
                )
            )
    return problems


def gcc_problem(gcc: Version, cuda: Version) -> CompatError | None:
    limit = gcc_max(cuda)
    if gcc.major > limit:
        return CompatError(
            f"gcc {gcc} is too new for CUDA {cuda}: nvcc accepts gcc <= {limit}",
            hint=f"install g++-{limit} (envbuilder picks g++-N from PATH by itself) or set CXX to one, "
            f"or use a newer CUDA",
        )
    if gcc.major < GCC_MIN:
        return CompatError(f"gcc {gcc} is too old: torch headers need gcc >= {GCC_MIN}", hint="install a newer gcc")
    return None


def torch_cuda_problem(torch_cuda: Version, nvcc: Version, what: str = "torch") -> CompatError | None:
    """torch refuses to build extensions when nvcc's CUDA major differs from its own (bw §2)."""
    if torch_cuda.major != nvcc.major:
        return CompatError(
            f"{what} is built for CUDA {torch_cuda}, but nvcc is CUDA {nvcc}: torch refuses to build "
            "extensions when the CUDA major versions differ",
            hint=f"use a CUDA {torch_cuda.major}.x toolkit (--cuda), or a torch built for CUDA {nvcc.major}.x",
        )
    return None


def torch_arch_problems(archs: tuple[Arch, ...], torch: Version) -> list[CompatError]:
    problems = []
    for arch in archs:
        if arch.suffix == "f":
            problems.append(
                CompatError(
                    f"torch does not accept family archs like {arch} in TORCH_CUDA_ARCH_LIST",
                    hint=f"use {arch.base} (plain SASS) or {arch.base}+PTX",
                )
            )
        minimum = arch.info.min_torch
        if minimum and Version(torch.base_version) < Version(minimum):
            problems.append(
                CompatError(
                    f"torch {torch} does not know arch {arch}: support starts with torch {minimum}",
                    hint=f"use torch >= {minimum}",
                )
            )
    return problems
