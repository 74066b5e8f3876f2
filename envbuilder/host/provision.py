"""CUDA 13.x toolkits assembled from PyPI wheels (research/blackwell.md §3): nvcc, crt, nvvm,
cudart and cccl from the `cuda-toolkit` meta package, into <cache>/toolkits/cuda-13.X/, plus the
two links the wheels lack (lib/libcudart.so for torch's link step, lib64 for nvcc's profile).
CUDA 12.x cannot be assembled this way: nvidia-cuda-nvcc-cu12 ships ptxas but no nvcc."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from packaging.version import Version

from envbuilder import proc
from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.host.toolchain import nvcc_version
from envbuilder.paths import cache_dir

COMPONENTS = "nvcc,crt,nvvm,cudart,cccl"
RECORD = "envbuilder-toolkit.json"


def toolkits_dir() -> Path:
    return cache_dir() / "toolkits"


def provisioned_roots() -> list[tuple[Path, str]]:
    """(CUDA_HOME, how it was found) of every toolkit `envbuilder toolkit install` made."""
    base = toolkits_dir()
    if not base.is_dir():
        return []
    return [
        (root, f"envbuilder toolkit ({root.parent.parent.name})")
        for root in sorted(base.glob("cuda-*/nvidia/cu*"))
        if (root / "bin" / "nvcc").is_file()
    ]


def check_release(release: str) -> Version:
    """The CUDA release to provision, or why it cannot be."""
    if not re.fullmatch(r"\d+\.\d+", release):
        raise InputError(f"toolkit install {release!r}: give a CUDA release such as 13.0 or 13.2")
    wanted = Version(release)
    if wanted.major < 13:
        raise InputError(
            f"CUDA {release} cannot be assembled from PyPI: nvidia-cuda-nvcc-cu12 contains ptxas but no nvcc",
            hint="install CUDA 12.x from NVIDIA (runfile, .deb/.rpm, or a CUDA container image such as "
            "nvidia/cuda:12.8.1-devel-ubuntu24.04) and point CUDA_HOME at it; envbuilder finds /usr/local/cuda-12.x by itself",
        )
    return wanted


def install(release: str, log: Path) -> tuple[Path, Version, bool]:
    """Provision CUDA `release` (13.0, 13.2 …): returns (CUDA_HOME, nvcc version, newly installed)."""
    wanted = check_release(release)
    dest = toolkits_dir() / f"cuda-{release}"
    root = dest / "nvidia" / f"cu{wanted.major}"
    if (root / "bin" / "nvcc").is_file():
        return root, nvcc_version(root / "bin" / "nvcc"), False
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    requirement = f"cuda-toolkit[{COMPONENTS}]=={release}.*"
    if _has_pip():
        argv = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            str(partial),
            requirement,
        ]
    elif shutil.which("uv"):
        argv = ["uv", "pip", "install", "--target", str(partial), requirement]
    else:
        raise EnvbuilderError("neither pip nor uv is available to fetch the CUDA wheels", hint="pip install uv")
    try:
        proc.run(argv, log=log)
    except EnvbuilderError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise EnvbuilderError(
            f"could not install {requirement}: {exc.message.splitlines()[0]}", hint=f"see {log}"
        ) from None
    new_root = partial / "nvidia" / f"cu{wanted.major}"
    _link(new_root)
    version = nvcc_version(new_root / "bin" / "nvcc")
    if Version(f"{version.major}.{version.minor}") != wanted:
        shutil.rmtree(partial, ignore_errors=True)
        raise EnvbuilderError(f"the wheels for CUDA {release} contain nvcc {version}")
    (partial / RECORD).write_text(
        json.dumps({"release": release, "nvcc": str(version), "requirement": requirement}, indent=1)
    )
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return root, version, True


def _has_pip() -> bool:
    try:
        proc.capture([sys.executable, "-m", "pip", "--version"], timeout=60)
        return True
    except EnvbuilderError:
        return False


def _link(root: Path) -> None:
    """The links a working CUDA_HOME needs and the wheels do not ship."""
    lib = root / "lib"
    for versioned in sorted(lib.glob("libcudart.so.*")):
        target = lib / "libcudart.so"
        if not target.exists():
            target.symlink_to(versioned.name)
        break
    lib64 = root / "lib64"
    if not lib64.exists():
        lib64.symlink_to("lib")
