"""toolchain: confirm the planned nvcc, host compiler and Python are still what the plan saw."""

from __future__ import annotations

from pathlib import Path

from envbuilder.context import Context, Data
from envbuilder.errors import CompatError
from envbuilder.host.toolchain import compiler_version, interpreter_facts, nvcc_version


def run(ctx: Context, inputs: Data) -> Data:
    nvcc = Path(inputs["cuda_home"]) / "bin" / "nvcc"
    found = nvcc_version(nvcc)
    if str(found) != inputs["cuda"]:
        raise CompatError(f"{nvcc} is now CUDA {found}, the plan expected {inputs['cuda']}", hint="run the build again")
    gcc = compiler_version(Path(inputs["compiler"]))
    python = interpreter_facts(Path(inputs["python"]))
    ctx.note(f"nvcc {found}, {Path(inputs['compiler']).name} {gcc}, Python {python['version']}")
    return {
        "nvcc": str(found),
        "cuda_home": inputs["cuda_home"],
        "compiler": inputs["compiler"],
        "gcc": str(gcc),
        "python": python,
    }
