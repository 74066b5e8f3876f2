"""Host discovery against small fake toolkits/compilers on disk (real files, real PATH lookup)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from packaging.version import Version

from envbuilder.host import discover
from envbuilder.host.gpu import parse_nvidia_smi
from envbuilder.host.toolchain import find_compilers, find_interpreters, find_toolkits


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def fake_toolkit(
    root: Path, release: str, full: str, codes: str = "sm_75 sm_80 sm_90 sm_120", cudart: bool = True
) -> Path:
    script(
        root / "bin" / "nvcc",
        f"""case "$1" in
  --version) echo "Cuda compilation tools, release {release}, V{full}";;
  --list-gpu-code) for c in {codes}; do echo $c; done;;
  -dryrun) echo "#$ _HERE_={root}/bin" >&2;;
esac
""",
    )
    if cudart:
        (root / "lib64").mkdir(parents=True, exist_ok=True)
        (root / "lib64" / "libcudart.so").write_bytes(b"")
    return root


def test_toolkits_from_cuda_home_and_wrapper(tmp_path, monkeypatch):
    real = fake_toolkit(tmp_path / "cuda-12.8", "12.8", "12.8.93")
    other = fake_toolkit(tmp_path / "cuda-13.0", "13.0", "13.0.88", cudart=False)
    # a wrapper script on PATH, as /usr/local/bin/nvcc is on this project's machines
    script(tmp_path / "bin" / "nvcc", f'exec {other}/bin/nvcc "$@"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("CUDA_HOME", str(real))
    found = {t.root: t for t in find_toolkits()}
    assert found[real].version == Version("12.8.93") and found[real].found_by == "$CUDA_HOME"
    assert found[real].sm_codes == (75, 80, 90, 120)
    assert found[other].found_by.startswith("nvcc on PATH")  # the wrapper resolved to its toolkit
    assert "libcudart.so" in found[other].problems[0]
    assert list(found)[0] == other  # newest first


def test_version_json_is_preferred(tmp_path, monkeypatch):
    root = fake_toolkit(tmp_path / "cuda", "12.9", "12.9.86")
    (root / "version.json").write_text(json.dumps({"cuda_nvcc": {"version": "12.9.41"}}))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("CUDA_HOME", str(root))
    (toolkit,) = [t for t in find_toolkits() if t.root == root]
    assert toolkit.version == Version("12.9.41")


def test_compilers_on_path(tmp_path, monkeypatch):
    for name, version in (("g++", "15.1.0"), ("g++-14", "14.2.0"), ("g++-13", "13.3.0")):
        script(tmp_path / name, f"echo {version}\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    compilers = find_compilers()
    assert [(c.name, str(c.version)) for c in compilers] == [
        ("g++", "15.1.0"),
        ("g++-13", "13.3.0"),
        ("g++-14", "14.2.0"),
    ]


def test_interpreters_from_pyenv(tmp_path, monkeypatch):
    for version in ("3.12.1", "3.10.13"):
        script(tmp_path / "pyenv" / "versions" / version / "bin" / "python3", "exit 0\n")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("PATH", "/nonexistent")
    found = {str(i.version): i.found_by for i in find_interpreters()}
    assert found["3.12.1"] == "pyenv" and found["3.10.13"] == "pyenv"
    assert "running envbuilder" in found.values()


def test_nvidia_smi_parsing():
    text = "0, NVIDIA GeForce RTX 5090, 12.0, 580.95.05, 32607\n1, NVIDIA H200, 9.0, 580.159.04, 143771\n"
    gpus = parse_nvidia_smi(text)
    assert [(g.name, g.compute_capability, g.memory_mib) for g in gpus] == [
        ("NVIDIA GeForce RTX 5090", "12.0", 32607),
        ("NVIDIA H200", "9.0", 143771),
    ]


def test_no_gpu_is_explained(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    host = discover()
    assert host.gpus == () and "nvidia-smi not found" in host.gpu_note
    assert host.cpu_count >= 1 and host.memory_gib > 0
    json.dumps(host.to_json())


def test_real_host_sees_this_machines_toolkit(cuda):
    assert cuda.root.is_dir() and 120 in cuda.sm_codes
    assert (cuda.root / "bin" / "nvcc").exists()
    assert os.access(cuda.nvcc, os.X_OK)
