"""Speed target: `envbuilder new` on a local tree under 5 s wall (without --try), 2-core machine.

The tree is made here, sized like a 3DGS method: 300 Python files, a rasterizer submodule that
has its own glm-sized submodule (1500 headers), a vendored simple-knn, a README install block,
an environment.yml with a pip: section and a requirements.txt, every requirement on a local
PEP 503 index served on 127.0.0.1 (so the index look-ups are real HTTP, but not the internet's
latency). Each run writes a fresh recipe folder; the first run warms envbuilder's git cache
(as a user's second `new` would find it) and is reported apart.

Usage: python benchmarks/bench_new.py [--runs 5] [--cli]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from newtrees import INDEX, WHEEL, add_submodule, commit_all, knn_files, rasterizer_files, serve, write_index

from helpers import git, make_repo

TARGET_S = 5.0
PACKAGES = [f"pkg{i:02d}" for i in range(25)]


def build_tree(base: Path) -> Path:
    glm = base / "up" / "glm"
    make_repo(glm, {f"glm/detail/h{i:04d}.hpp": f"#pragma once\n// header {i}\n" for i in range(1500)})
    ras = base / "up" / "rasterizer"
    make_repo(ras, rasterizer_files())
    add_submodule(ras, glm.as_uri(), "third_party/glm")
    commit_all(ras, "glm")
    method = base / "benchsplat"
    files = {
        "README.md": "# Bench Splat\n\n## Installation\n```\npip install -r requirements.txt\npip install ./submodules/rasterizer\npip install ./vendor/simple-knn\n```\n",
        "environment.yml": "dependencies:\n  - python=3.8\n  - pip:\n" + "".join(f"    - {p}\n" for p in PACKAGES[:15]),
        "requirements.txt": "".join(f"{p}==1.0\n" for p in PACKAGES[15:]) + "torch==1.13.1\nmeshcubes==0.2.0\n",
        **{f"vendor/simple-knn/{k}": v for k, v in knn_files().items()},
    }
    for i in range(300):
        imports = "\n".join(f"import {PACKAGES[(i + j) % len(PACKAGES)]}" for j in range(3))
        files[f"lib/mod{i // 30}/file{i:03d}.py"] = (
            f"import os\nimport torch\n{imports}\n\ndef f{i}(x):\n    return x + {i}\n" * 5
        )
    files["train.py"] = (
        "from diff_gaussian_rasterization import GaussianRasterizer\nfrom simple_knn._C import distCUDA2\n"
    )
    make_repo(method, files)
    add_submodule(method, ras.as_uri(), "submodules/rasterizer")
    git("submodule", "update", "--init", "--recursive", "-q", cwd=method)
    commit_all(method, "rasterizer")
    return method


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cli", action="store_true", help="run the CLI in a child process instead of the library")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        method = build_tree(base)
        projects = dict(INDEX)
        projects.update({p: [f"{p}-1.0-py3-none-any.whl", f"{p}-1.1-cp312-cp312-{WHEEL}.whl"] for p in PACKAGES})
        simple = write_index(base / "pypi", projects)
        env = {"ENVBUILDER_CACHE": str(base / "cache")}
        with serve(simple.parent) as url:
            times = []
            for run in range(args.runs + 1):
                out = base / f"out{run}"
                started = time.perf_counter()
                if args.cli:
                    subprocess.run(
                        [sys.executable, "-m", "envbuilder", "new", method.as_uri(), "--output", str(out), "--json"],
                        check=True,
                        capture_output=True,
                        env={**__import__("os").environ, **env, "ENVBUILDER_INDEX_URL": url + "/simple/"},
                    )
                else:
                    import os

                    os.environ.update(env)
                    from envbuilder.new.command import new
                    from envbuilder.new.index import SimpleIndex

                    result = new(method.as_uri(), output=out, index=SimpleIndex(url + "/simple/", cache=base / "index"))
                    assert result.draft.extensions, "the bench tree's extensions were not found"
                times.append(time.perf_counter() - started)
    first, rest = times[0], times[1:]
    median = statistics.median(rest)
    print(
        f"new (local tree, 300 .py files, nested submodules with 1500 headers, 27 requirements): first run {first:.2f} s, "
        f"then min {min(rest):.2f} s, median {median:.2f} s over {len(rest)} runs (target < {TARGET_S:.0f} s)"
    )
    return 0 if median < TARGET_S and first < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
