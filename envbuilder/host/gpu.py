"""Visible NVIDIA GPUs, read with nvidia-smi (no CUDA library is loaded)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from envbuilder import proc
from envbuilder.errors import EnvbuilderError


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: str  # "12.0"
    driver: str
    memory_mib: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "name": self.name,
            "compute_capability": self.compute_capability,
            "driver": self.driver,
            "memory_mib": self.memory_mib,
        }


def parse_nvidia_smi(text: str) -> list[Gpu]:
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        memory = fields[4].split()[0]
        gpus.append(
            Gpu(
                index=int(fields[0]),
                name=fields[1],
                compute_capability=fields[2],
                driver=fields[3],
                memory_mib=int(memory) if memory.isdigit() else None,
            )
        )
    return gpus


def find_gpus() -> tuple[list[Gpu], str | None]:
    """The GPUs, and why there are none when the list is empty."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return [], "nvidia-smi not found (no NVIDIA driver on this machine)"
    try:
        out = proc.capture(
            [smi, "--query-gpu=index,name,compute_cap,driver_version,memory.total", "--format=csv,noheader,nounits"],
            timeout=60,
        )
    except EnvbuilderError as exc:
        return [], f"nvidia-smi failed: {exc.message.splitlines()[-1]}"
    gpus = parse_nvidia_smi(out)
    return gpus, None if gpus else "nvidia-smi lists no GPU"
