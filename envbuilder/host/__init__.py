"""Host facts: what this machine has (toolkits, compilers, Pythons, GPUs, cores, memory).

`discover()` is the only place that looks at the machine; the planner receives the result and
stays pure.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from envbuilder.host.gpu import Gpu, find_gpus
from envbuilder.host.toolchain import Compiler, Interpreter, Toolkit, find_compilers, find_interpreters, find_toolkits


@dataclass(frozen=True)
class HostFacts:
    toolkits: tuple[Toolkit, ...]
    compilers: tuple[Compiler, ...]
    interpreters: tuple[Interpreter, ...]
    gpus: tuple[Gpu, ...]
    gpu_note: str | None  # why there is no GPU, when there is none
    cpu_count: int
    memory_gib: float
    glibc: str | None
    machine: str
    tools: dict[str, str] = field(default_factory=dict)  # git, uv … -> path

    def to_json(self) -> dict[str, object]:
        return {
            "machine": self.machine,
            "glibc": self.glibc,
            "cpu_count": self.cpu_count,
            "memory_gib": round(self.memory_gib, 1),
            "toolkits": [t.to_json() for t in self.toolkits],
            "compilers": [c.to_json() for c in self.compilers],
            "interpreters": [i.to_json() for i in self.interpreters],
            "gpus": [g.to_json() for g in self.gpus],
            "gpu_note": self.gpu_note,
            "tools": self.tools,
        }


TOOLS = ("git", "uv", "nvidia-smi")


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


def _glibc() -> str | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    return text.split()[-1] if text else None


def discover(*, gpus: bool = True, extra_toolkits: list[tuple[Path, str]] | None = None) -> HostFacts:
    """Look at this machine. gpus=False skips nvidia-smi (plans that name --arch don't need it)."""
    from envbuilder.host.provision import provisioned_roots

    gpu_list, gpu_note = find_gpus() if gpus else ([], "not queried")
    return HostFacts(
        toolkits=tuple(find_toolkits([*(extra_toolkits or []), *provisioned_roots()])),
        compilers=tuple(find_compilers()),
        interpreters=tuple(find_interpreters()),
        gpus=tuple(gpu_list),
        gpu_note=gpu_note,
        cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        memory_gib=_memory_gib(),
        glibc=_glibc(),
        machine=f"{platform.system()} {platform.machine()}",
        tools={name: path for name in TOOLS if (path := shutil.which(name))},
    )


__all__ = ["Compiler", "Gpu", "HostFacts", "Interpreter", "Toolkit", "discover"]
