"""`envbuilder doctor`: can this machine build (and run) CUDA code for an arch, and if not, why.

For each toolkit: does it know the arch, does the host gcc fit it. Then, unless told not to, it
compiles the canary's standalone program (no torch needed) with the best toolkit, reads the
SASS/PTX in the result and, when a GPU is present, runs it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from envbuilder import fatbin, proc
from envbuilder.errors import EnvbuilderError
from envbuilder.host import HostFacts, compat
from envbuilder.host.compat import Arch

CANARY_PROGRAM = Path("src") / "csrc" / "canary_main.cu"


def toolkit_verdicts(host: HostFacts, archs: tuple[Arch, ...]) -> list[dict[str, Any]]:
    verdicts = []
    for toolkit in host.toolkits:
        problems = [p.message for p in compat.cuda_problems(archs, toolkit.version)]
        problems += list(toolkit.problems)
        fitting = [c for c in host.compilers if compat.gcc_problem(c.version, toolkit.version) is None]
        if not host.compilers:
            problems.append("no C++ compiler (g++) found")
        elif not fitting:
            gcc = host.compilers[0]
            problems.append(
                f"gcc {gcc.version} is too new for CUDA {toolkit.release} (max gcc {compat.gcc_max(toolkit.version)})"
            )
        verdicts.append(
            {
                "toolkit": toolkit.to_json(),
                "compiler": (fitting and fitting[0].to_json()) or None,
                "ok": not problems,
                "problems": problems,
            }
        )
    return verdicts


def compile_canary(
    host: HostFacts, archs: tuple[Arch, ...], canary_dir: Path, verdicts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Compile (and with a GPU, run) the canary program with the first toolkit that fits."""
    usable = [v for v in verdicts if v["ok"]]
    if not usable:
        return {"ok": False, "skipped": "no toolkit here can build for " + ", ".join(str(a) for a in archs)}
    verdict = usable[0]
    toolkit = next(t for t in host.toolkits if str(t.root) == verdict["toolkit"]["root"])
    compiler = verdict["compiler"]
    argv = [str(toolkit.nvcc), "-O2", "-std=c++17", "-ccbin", compiler["path"]]
    for arch in archs:
        code = f"{arch.sm}{arch.suffix}"
        argv.append(f"-gencode=arch=compute_{code},code=sm_{code}")
        if arch.ptx:
            argv.append(f"-gencode=arch=compute_{code},code=compute_{code}")
    result: dict[str, Any] = {"toolkit": str(toolkit.root), "nvcc": str(toolkit.version)}
    with tempfile.TemporaryDirectory(prefix="envbuilder-doctor-") as tmp:
        exe = Path(tmp) / "canary"
        started = time.monotonic()
        try:
            proc.capture([*argv, "-o", str(exe), str(canary_dir / CANARY_PROGRAM)], timeout=900, merge_stderr=True)
        except EnvbuilderError as exc:
            result.update(ok=False, error=exc.message)
            return result
        result["compile_seconds"] = round(time.monotonic() - started, 1)
        report = fatbin.inspect_file(exe)
        coverage = {str(a): report.runs_on(a.major, a.minor, a.suffix) for a in archs}
        result.update(sass=report.sass, ptx=report.ptx, runs_on=coverage, ok=all(coverage.values()))
        if host.gpus:
            try:
                out = proc.capture([str(exe)], timeout=120)
                result["run"] = json.loads(out.strip().splitlines()[-1])
            except (EnvbuilderError, ValueError, IndexError) as exc:
                result["run"] = {"ok": False, "error": getattr(exc, "message", str(exc))}
            result["ok"] = bool(result["ok"]) and bool(result["run"].get("ok"))
        else:
            result["run"] = {"skipped": host.gpu_note or "no GPU"}
    return result
