"""The kernel probes are scripts run by the env's Python. Python puts a script's own folder first
on sys.path, so a probe named like the module it tests imports itself instead (this broke
probes/simple_knn.py on the GPU machine). Each probe here runs against stand-in packages that
stop it at its first import of the tested module: reaching the stand-in proves the import
resolves to the installed package, after torch (a bare extension .so such as _gridencoder links
libc10.so, which only importing torch loads: found on the GPU machine). The kernels themselves run on a GPU (verify step)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envbuilder.paths import known_probes, probe_script, probes_dir


def third_party_imports(script: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module.split(".")[0])
    return [n for n in dict.fromkeys(names) if n not in sys.stdlib_module_names]


def test_probe_names_are_the_files():
    assert known_probes() == sorted(
        ["canary", "gridencoder", "gsplat", "kaolin", "pytorch3d", "rasterizer", "simple_knn"]
    )
    for script in probes_dir().glob("*.py"):
        assert script.stem not in third_party_imports(script), f"{script.name} would import itself"


@pytest.mark.parametrize("probe", known_probes())
def test_probe_imports_the_installed_module(probe, tmp_path):
    script = probe_script(probe)
    tested = [n for n in third_party_imports(script) if n not in ("torch", "numpy")]
    assert tested, f"{script.name} imports nothing to test"
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch/__init__.py").write_text("")
    for name in tested:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            "import sys\n"
            f"if 'torch' not in sys.modules: raise SystemExit('{name} imported before torch')\n"
            f"raise SystemExit('reached the installed {name}')\n"
        )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert f"reached the installed {tested[0]}" in result.stderr, result.stderr[-2000:]
