"""verify: prove the env holds what it claims.

1. every built .so with device code holds SASS for each requested arch, or PTX that the driver
   can JIT to it (read from the ELF .nv_fatbin section, envbuilder/fatbin.py);
2. every extension module imports in the env;
3. with a GPU: each extension's probe runs its kernels and checks them against torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from envbuilder.context import Data, Layout, StepContext
from envbuilder.errors import VerifyFailed
from envbuilder.host.compat import parse_arch
from envbuilder.paths import probe_script
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

NAME = "verify"
DEPENDS: tuple[str, ...] = ("extensions",)
VOLATILE = False
DISTRUST_AFTER_CUT: tuple[str, ...] = ()

IMPORTS = """
import importlib, json, sys, traceback
try:
    import torch  # extension modules link against libtorch: load it the way users do
except ImportError:
    pass
result = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        result[name] = {"ok": True, "file": getattr(module, "__file__", None)}
    except BaseException as exc:
        result[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
print(json.dumps(result))
"""


@dataclass(frozen=True)
class Inputs:
    archs: tuple[str, ...]
    modules: tuple[str, ...]
    probes: tuple[str, ...]
    gpus: tuple[str, ...]

    def key(self) -> Data:
        return {
            "archs": list(self.archs),
            "modules": list(self.modules),
            "probes": list(self.probes),
            "gpus": list(self.gpus),
        }


class Outputs(TypedDict):
    binaries: list[dict[str, Any]]  # per .so: extension, file, sass, ptx, runs_on
    imports: dict[str, dict[str, Any]]
    probes: dict[str, Any]


def inputs(r: Resolved) -> tuple[str, Inputs]:
    summary = f"every .so holds SASS (or JIT-able PTX) for {', '.join(str(a) for a in r.archs)}; modules import" + (
        "; probes run on the GPU" if r.gpus else "; no GPU here: kernel probes skipped"
    )
    return summary, Inputs(
        tuple(str(a) for a in r.archs),
        tuple(e.extension.import_name for e in r.extensions),
        tuple(e.extension.probe for e in r.extensions if e.extension.probe),
        r.gpus,
    )


def check_binaries(platlib: Path, extensions: list[Data], archs: list[str]) -> tuple[list[Data], list[str]]:
    from envbuilder import fatbin

    wanted = [parse_arch(a) for a in archs]
    binaries, problems = [], []
    for ext in extensions:
        with_device_code = 0
        for rel in ext["so_files"]:
            found = fatbin.inspect_file(platlib / rel)
            coverage = {str(a): found.runs_on(a.major, a.minor, a.suffix) for a in wanted}
            binaries.append(
                {"extension": ext["name"], "file": rel, "sass": found.sass, "ptx": found.ptx, "runs_on": coverage}
            )
            if not found.has_device_code:
                continue
            with_device_code += 1
            for arch in wanted:
                if coverage[str(arch)] is None:
                    problems.append(
                        f"{rel}: no SASS or PTX for {arch} (it holds SASS {', '.join(found.sass) or 'none'}, "
                        f"PTX {', '.join(found.ptx) or 'none'})"
                    )
                if arch.ptx and f"compute_{arch.sm}" not in found.ptx:
                    problems.append(f"{rel}: {arch} asks for PTX compute_{arch.sm}, which is missing")
        if with_device_code == 0:
            problems.append(f"extension {ext['name']}: none of its {len(ext['so_files'])} .so files holds device code")
    return binaries, problems


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    platlib = Path(deps["venv"]["platlib"])
    binaries, problems = check_binaries(platlib, deps["extensions"]["extensions"], list(inputs.archs))
    if problems:
        raise VerifyFailed(
            "built binaries lack the requested archs:\n  " + "\n  ".join(problems),
            hint="an nvcc flag containing the text 'arch' in the extension's setup.py makes torch drop "
            "TORCH_CUDA_ARCH_LIST; see the extensions log for the -gencode flags used",
        )
    for b in binaries:
        ctx.note(
            f"{b['extension']} {Path(b['file']).name}: SASS {' '.join(b['sass']) or '-'}; PTX {' '.join(b['ptx']) or '-'}"
        )
        jit_only = [arch for arch, how in b["runs_on"].items() if how == "ptx"]
        if jit_only:
            ctx.note(
                f"warning: {Path(b['file']).name} runs on {', '.join(jit_only)} only through PTX JIT "
                "(slow first start, no arch-tuned code): did the build ignore TORCH_CUDA_ARCH_LIST?"
            )
    imports = _imports(ctx, list(inputs.modules))
    probes: dict[str, Any] = {}
    for probe in inputs.probes:
        if not inputs.gpus:
            probes[probe] = {"skipped": "no GPU on this machine"}
            continue
        out = ctx.capture([ctx.layout.python, probe_script(probe)], timeout=900)
        result = json.loads(out.strip().splitlines()[-1])
        probes[probe] = result
        if not result.get("ok"):
            raise VerifyFailed(f"probe {probe} failed on the GPU: {result.get('error') or result}")
        ctx.note(f"probe {probe}: ok on {result.get('device', 'GPU')}")
    return Outputs(binaries=binaries, imports=imports, probes=probes)


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return True


def _imports(ctx: StepContext, modules: list[str]) -> dict[str, dict[str, Any]]:
    if not modules:
        ctx.note("imported nothing")
        return {}
    imports: dict[str, dict[str, Any]] = json.loads(
        ctx.capture([ctx.layout.python, "-c", IMPORTS, *modules]).strip().splitlines()[-1]
    )
    failed = {name: r for name, r in imports.items() if not r["ok"]}
    if failed:
        name, r = next(iter(failed.items()))
        with ctx.log.open("a", encoding="utf-8") as log:
            log.write(r.get("trace", "") + "\n")  # so that diagnosis sees the traceback
        raise VerifyFailed(
            f"module {name} does not import in the env: {r['error']}", hint="see the verify log for the traceback"
        )
    ctx.note(f"imported {', '.join(modules)}")
    return imports
