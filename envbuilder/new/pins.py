"""Moving a method's requirements to this era: rules kept as data, each with its source and the
`why` written next to the requirement it changes.

Order of application for one requirement: the first rule whose names (and condition) match
decides; a requirement no rule takes is checked against the package index for a wheel that
installs on the target Python (raise an exact pin to the first release that has one; a TODO when
no release has one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from envbuilder.new.index import Index, IndexUnavailable, Target, releases


@dataclass(frozen=True)
class PinRule:
    id: str
    names: tuple[str, ...]  # canonical project names
    action: str  # drop | replace | omit | no-build-isolation
    why: str
    source: str
    replace: tuple[tuple[str, str], ...] = ()  # (requirement, why) written instead
    when: str | None = None  # a named condition (CONDITIONS below)
    origins: tuple[str, ...] = ()  # only for requirements from these origins (prefix match)
    todo: str | None = None
    patch: str | None = None  # a method-level patch that goes with it


RULES: tuple[PinRule, ...] = (
    PinRule(
        "torch-table",
        ("torch", "torchvision", "torchaudio", "pytorch", "pytorch-cuda", "cudatoolkit"),
        "drop",
        "the recipe's torch table picks torch (and torchvision/torchaudio) for each CUDA build; an "
        "old pin would pull a torch without Blackwell kernels",
        "DESIGN.md (wheels step); recipes/*.yaml torch tables",
    ),
    PinRule(
        "conda-toolchain",
        (
            "cuda-toolkit",
            "cuda",
            "cudnn",
            "cuda-nvcc",
            "ffmpeg",
            "openh264",
            "pip",
            "gcc",
            "gxx",
            "gxx-linux-64",
            "cmake",
            "mkl",
            "libgcc",
            "libstdcxx-ng",
            "cxx-compiler",
            "pyg",
        ),
        "drop",
        "a conda package for the toolchain or a system library; envbuilder's toolchain step finds CUDA and gcc, "
        "and the venv brings its own pip",
        "DESIGN.md (toolchain step)",
        origins=("environment.yml conda", "README conda", "install"),
    ),
    PinRule(
        "stdlib-backport",
        ("argparse", "dataclasses", "typing", "enum34", "futures", "pathlib", "configparser"),
        "drop",
        "part of the standard library; the package on PyPI is an old backport",
        "https://docs.python.org/3/library/ (argparse since 3.2, dataclasses since 3.7)",
    ),
    PinRule(
        "mmcv-config",
        ("mmcv", "mmcv-full"),
        "replace",
        "mmcv is used only for mmcv.Config, which mmcv 2.x moved to mmengine; mmcv 1.x does not install on "
        "Python 3.12 with current setuptools",
        "research/upstream.md §4.2, §5.2; recipes/4dgaussians.yaml",
        replace=(
            (
                "mmengine-lite==0.10.7",
                "replaces {req} ({where}), used only for mmcv.Config (patch mmcv-config-mmengine). The lite build "
                "has Config without mmengine's opencv-python dependency, whose cv2 would clash with opencv-python-headless",
            ),
            ("packaging", "mmengine-lite imports it (mmengine/utils/version_utils.py) without declaring it"),
        ),
        when="mmcv-config-only",
        patch="mmcv-config-mmengine",
    ),
    PinRule(
        "mmcv-full-1x",
        ("mmcv-full",),
        "omit",
        "mmcv-full 1.x does not install on Python 3.12: its setup.py imports pkg_resources (removed in "
        "setuptools 82) and mim fails with pkgutil.ImpImporter; it also compiles CUDA ops from source",
        "research/upstream.md §1.3 (open-mmlab/mmcv #3263, #3334; open-mmlab/mim #242)",
        todo="{req} ({where}) is left out: the code uses more of mmcv than Config ({usage}). Port those uses to "
        "mmcv 2.x / mmengine, or build it in a separate Python 3.10 env",
    ),
    PinRule(
        "tensorflow-gpu",
        ("tensorflow-gpu",),
        "replace",
        "tensorflow-gpu stopped at 2.12, an empty package that says to install tensorflow; tensorflow has "
        "carried the GPU build since 2.1 and has Python 3.12 wheels from 2.16",
        "research/upstream.md §1.3; recipes/talkinggaussian.yaml",
        replace=(("tensorflow>=2.16", "replaces {req} ({where}), which has no wheel for this Python"),),
    ),
    PinRule(
        "protobuf-for-old-tensorflow",
        ("protobuf",),
        "drop",
        "an upper bound for tensorflow-gpu 2.x; tensorflow >= 2.16 needs protobuf >= 3.20.3 and brings its own",
        "recipes/gaussiantalker.yaml (tensorflow replaces tensorflow-gpu and its protobuf<=3.20.1 pin)",
        when="capped-with-old-tensorflow",
    ),
    PinRule(
        "opencv-headless",
        ("opencv-python",),
        "replace",
        "one cv2 per env: the headless build needs no X11/GL libraries on servers, and two opencv packages in "
        "one env overwrite each other's cv2",
        "recipes/*.yaml (every shipped recipe uses opencv-python-headless)",
        replace=(("opencv-python-headless{spec}", "replaces {req} ({where}): the headless build of the same cv2"),),
    ),
    PinRule(
        "sklearn-name",
        ("sklearn",),
        "replace",
        "the 'sklearn' package on PyPI refuses to install since December 2023; the project is scikit-learn",
        "https://pypi.org/project/sklearn/",
        replace=(("scikit-learn", "replaces {req} ({where}), a name that refuses to install"),),
    ),
    PinRule(
        "xformers-torch-pin",
        ("xformers",),
        "omit",
        "each xformers wheel requires one exact torch release, so installing it would replace the recipe's torch",
        "https://github.com/facebookresearch/xformers#installing-xformers; recipes/cap4d.yaml notes",
        todo="{req} ({where}) is left out: pin the xformers release built for the recipe's torch if the method "
        "needs it (it is often optional)",
    ),
    PinRule(
        "triton-with-torch",
        ("triton",),
        "drop",
        "torch's wheels depend on the triton release they were built with; a separate pin can only conflict",
        "https://pypi.org/project/torch/ (Requires-Dist: triton==…); recipes/cap4d.yaml leaves it out",
    ),
    PinRule(
        "openmim-installer",
        ("openmim",),
        "drop",
        "OpenMMLab's installer (mim), a tool for the user's shell; envbuilder installs with pip or uv",
        "https://github.com/open-mmlab/mim",
    ),
    PinRule(
        "chumpy-build",
        ("chumpy",),
        "no-build-isolation",
        "its setup.py imports pip and numpy, so it builds only without build isolation",
        "research/upstream.md §2.2; recipes/cap4d.yaml",
    ),
)


@dataclass
class Facts:
    """What conditions look at: the method's use of modules and its other requirements."""

    usage: dict[str, set[str]] = field(default_factory=dict)  # module -> attributes/submodules used
    names: set[str] = field(default_factory=set)  # canonical names of every declared requirement


def _mmcv_config_only(req: Requirement, facts: Facts) -> bool:
    used = facts.usage.get("mmcv", set())
    return bool(used) and used <= {"Config"}


def _capped_with_old_tensorflow(req: Requirement, facts: Facts) -> bool:
    capped = any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier)
    return capped and "tensorflow-gpu" in facts.names


CONDITIONS: dict[str, Callable[[Requirement, Facts], bool]] = {
    "mmcv-config-only": _mmcv_config_only,
    "capped-with-old-tensorflow": _capped_with_old_tensorflow,
}


@dataclass
class Outcome:
    """What becomes of one declared requirement."""

    original: str
    where: str
    requirements: list[tuple[str, str | None]] = field(default_factory=list)  # (req, why) to write
    rule: str | None = None
    no_build_isolation: bool = False
    dropped: str | None = None  # why it is not written
    todo: str | None = None
    patch: str | None = None
    checked: str | None = None  # what the index said, for the comment


def rule_for(req: Requirement, origin: str, facts: Facts) -> PinRule | None:
    name = canonicalize_name(req.name)
    for rule in RULES:
        if name not in rule.names:
            continue
        if rule.origins and not any(origin.startswith(o) for o in rule.origins) and name != "cudatoolkit":
            continue
        if rule.when and not CONDITIONS[rule.when](req, facts):
            continue
        return rule
    return None


def _usage_text(facts: Facts) -> str:
    used = sorted(facts.usage.get("mmcv", set()))
    return ", ".join(f"mmcv.{u}" for u in used[:6]) or "its imports"


def apply_rule(rule: PinRule, req: Requirement, where: str, facts: Facts) -> Outcome:
    text = str(req)
    out = Outcome(text, where, rule=rule.id, patch=rule.patch)
    fill = {"req": text, "where": where, "spec": str(req.specifier), "usage": _usage_text(facts)}
    if rule.action == "drop":
        out.dropped = f"{rule.why} (rule {rule.id})"
    elif rule.action == "omit":
        out.dropped = f"{rule.why} (rule {rule.id})"
        out.todo = (rule.todo or "{req} ({where}) is left out").format(**fill)
    elif rule.action == "replace":
        for new, why in rule.replace:
            reason = why.format(**fill)
            out.requirements.append(
                (new.format(**fill), f"{reason}; {rule.why} (rule {rule.id})" if "{req}" in why else reason)
            )
    elif rule.action == "no-build-isolation":
        out.requirements.append((text, f"{rule.why} (rule {rule.id})"))
        out.no_build_isolation = True
    return out


def _exact(req: Requirement) -> Version | None:
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        try:
            return Version(specs[0].version)
        except ValueError:
            return None
    return None


def check_wheels(req: Requirement, where: str, index: Index, target: Target) -> Outcome:
    """Keep a requirement whose chosen release has a wheel for the target; raise an exact pin to
    the first release that has one; a TODO when none has."""
    text = str(req)
    out = Outcome(text, where)
    py = f"cp{target.python.major}{target.python.minor}"
    try:
        files = index.files(req.name)
    except IndexUnavailable as exc:
        out.requirements.append((text, None))
        out.todo = f"{text} ({where}): could not check for a {py} wheel ({exc})"
        return out
    if files is None:
        out.requirements.append((text, None))
        out.todo = f"{text} ({where}): {req.name!r} is not on the index {index.url}; find where it comes from"
        return out
    found = releases(files, target)
    allowed = [r for r in found if req.specifier.contains(r.version, prereleases=False)]
    if any(r.wheel for r in allowed):
        out.requirements.append((text, None))
        best = max(r.version for r in allowed if r.wheel)
        out.checked = f"{py} wheel up to {best}" if req.specifier else None
        return out
    pinned = _exact(req)
    later = [r for r in found if r.wheel and (pinned is None or r.version > pinned)]
    if pinned is not None and later:
        first = later[0].version
        name = req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")
        marker = f"; {req.marker}" if req.marker else ""
        out.requirements.append(
            (
                f"{name}=={first}{marker}",
                f"upstream pins {text} ({where}), which has no wheel for {py}; {first} is the first release "
                "that has one (rule raise-to-wheel, looked up on the index)",
            )
        )
        out.rule = "raise-to-wheel"
        return out
    out.requirements.append((text, None))
    if not found:
        out.todo = f"{text} ({where}): the index lists no release of {req.name}"
    elif any(r.wheel for r in found):
        out.todo = (
            f"{text} ({where}): no release allowed by {req.specifier} has a {py} wheel; newer ones do: relax the pin"
        )
    else:
        out.todo = (
            f"{text} ({where}): {req.name} has only source distributions for {py} on Linux, so pip builds it at install: "
            "fine for pure Python, but a C extension needs its compiler and headers (check that it builds)"
        )
    return out


def prefetch(index: Index, names: list[str]) -> None:
    """Ask the index about every project at once (the answers are cached by the index)."""

    def one(name: str) -> None:
        with contextlib.suppress(IndexUnavailable):  # check_wheels asks again and says so
            index.files(name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, sorted(set(names))))


def spec_of(text: str) -> SpecifierSet:
    return Requirement(text).specifier
