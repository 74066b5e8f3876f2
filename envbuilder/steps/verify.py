"""verify: prove the env holds what it claims.

1. every built .so with device code holds SASS for each requested arch, or PTX that the driver
   can JIT to it (read from the ELF .nv_fatbin section, envbuilder/fatbin.py);
2. every extension module imports in the env;
3. with a GPU: each extension's probe runs its kernels and checks them against torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from envbuilder import fatbin
from envbuilder.context import Context, Data
from envbuilder.errors import EnvbuilderError
from envbuilder.host.compat import parse_arch
from envbuilder.paths import probe_script

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


class VerifyFailed(EnvbuilderError):
    pass


def check_binaries(ctx: Context, archs: list[str]) -> tuple[list[Data], list[str]]:
    wanted = [parse_arch(a) for a in archs]
    platlib = Path(str(ctx.outputs["venv"]["platlib"]))
    binaries, problems = [], []
    for ext in ctx.outputs["extensions"]["extensions"]:
        with_device_code = 0
        for rel in ext["so_files"]:
            report = fatbin.inspect_file(platlib / rel)
            coverage = {str(a): report.runs_on(a.major, a.minor, a.suffix) for a in wanted}
            binaries.append(
                {"extension": ext["name"], "file": rel, "sass": report.sass, "ptx": report.ptx, "runs_on": coverage}
            )
            if not report.has_device_code:
                continue
            with_device_code += 1
            for arch in wanted:
                how = coverage[str(arch)]
                if how is None:
                    problems.append(
                        f"{rel}: no SASS or PTX for {arch} (it holds SASS {', '.join(report.sass) or 'none'}, "
                        f"PTX {', '.join(report.ptx) or 'none'})"
                    )
                if arch.ptx and f"compute_{arch.sm}" not in report.ptx:
                    problems.append(f"{rel}: {arch} asks for PTX compute_{arch.sm}, which is missing")
        if with_device_code == 0:
            problems.append(f"extension {ext['name']}: none of its {len(ext['so_files'])} .so files holds device code")
    return binaries, problems


def run(ctx: Context, inputs: Data) -> Data:
    binaries, problems = check_binaries(ctx, inputs["archs"])
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

    modules = inputs["modules"]
    imports = (
        json.loads(ctx.capture([ctx.layout.python, "-c", IMPORTS, *modules]).strip().splitlines()[-1])
        if modules
        else {}
    )
    failed = {name: r for name, r in imports.items() if not r["ok"]}
    if failed:
        name, r = next(iter(failed.items()))
        raise VerifyFailed(
            f"module {name} does not import in the env: {r['error']}", hint="see the verify log for the traceback"
        )
    ctx.note(f"imported {', '.join(modules) or 'nothing'}")

    probes: dict[str, object] = {}
    for probe in inputs["probes"]:
        if not inputs["gpus"]:
            probes[probe] = {"skipped": "no GPU on this machine"}
            continue
        script = probe_script(probe)
        out = ctx.capture([ctx.layout.python, script], timeout=900)
        result = json.loads(out.strip().splitlines()[-1])
        probes[probe] = result
        if not result.get("ok"):
            raise VerifyFailed(f"probe {probe} failed on the GPU: {result.get('error') or result}")
        ctx.note(f"probe {probe}: ok on {result.get('device', 'GPU')}")
    return {"binaries": binaries, "imports": imports, "probes": probes}
