"""toolchain: confirm the planned nvcc, host compiler and Python are still what the plan saw."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypedDict

from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import CompatError
from envbuilder.host.toolchain import compiler_version, interpreter_facts, nvcc_version
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

NAME = "toolchain"
DEPENDS: tuple[str, ...] = ()
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    cuda_home: str
    cuda: str
    compiler: str
    gcc: str
    python: str

    def key(self) -> Data:
        return asdict(self)


class Outputs(TypedDict):
    nvcc: str
    cuda_home: str
    compiler: str
    gcc: str
    python: dict[str, Any]  # version, abi, ... of the interpreter (host/toolchain.py)


def inputs(r: Resolved) -> tuple[str, Inputs]:
    t, c, i = r.toolkit, r.compiler, r.interpreter
    summary = f"CUDA {t.version} at {t.root}, {c.name} {c.version}, Python {i.version}"
    return summary, Inputs(str(t.root), str(t.version), str(c.path), str(c.version), str(i.path))


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    nvcc = Path(inputs.cuda_home) / "bin" / "nvcc"
    found = nvcc_version(nvcc)
    if str(found) != inputs.cuda:
        raise CompatError(f"{nvcc} is now CUDA {found}, the plan expected {inputs.cuda}", hint="run the build again")
    gcc = compiler_version(Path(inputs.compiler))
    python = interpreter_facts(Path(inputs.python))
    ctx.note(f"nvcc {found}, {Path(inputs.compiler).name} {gcc}, Python {python['version']}")
    return Outputs(nvcc=str(found), cuda_home=inputs.cuda_home, compiler=inputs.compiler, gcc=str(gcc), python=python)


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return True
