"""No false alarms on the logs envbuilder writes, and both compilers' wordings are recognised.

Clean logs of each kind give no finding: a real canary build's step logs, a smoke run's step logs,
and the verify step's import check; each has a failing twin that proves the log is read. The
compile test feeds real nvcc and g++ output for the same source to the scanner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_smoke import fake_env

from envbuilder import diagnose, proc, smoke
from envbuilder.steps.verify import IMPORTS


def findings(path: Path) -> list[str]:
    return [f.id for f in diagnose.scan_file(path)]


@pytest.mark.build
def test_a_real_canary_builds_logs_give_no_finding(canary_env):
    logs = sorted((canary_env / ".envbuilder" / "logs").glob("*.log"))
    names = [p.name for p in logs]
    assert any("extensions" in n for n in names) and any("verify" in n for n in names), names
    for log in logs:
        assert findings(log) == [], log.name


def test_a_smoke_runs_logs_give_no_finding(tmp_path):
    recipe, prefix = fake_env(tmp_path)
    result = smoke.run(recipe, prefix, note=lambda _: None)
    assert result.exit_code == 0, result.to_json()
    logs = sorted((prefix / ".envbuilder" / "logs").glob("smoke-*.log"))
    assert [p.name for p in logs] == ["smoke-render.log", "smoke-train.log"]
    assert "Training progress: 30/30" in logs[1].read_text()
    for log in logs:
        assert findings(log) == [], log.name


def test_a_failed_smoke_step_log_names_its_cause(tmp_path, monkeypatch):
    recipe, prefix = fake_env(tmp_path)
    monkeypatch.setenv("FAKE_MODE", "crash")
    result = smoke.run(recipe, prefix, note=lambda _: None)
    train = next(s for s in result.steps if s.name == "train")
    assert train.status == "failed" and train.log
    assert findings(Path(train.log)) == ["illegal-memory-access"]


def _verify_log(tmp_path: Path, *modules: str) -> Path:
    """What the verify step writes: its import check, run by the env's Python, into a step log."""
    log = tmp_path / "07-verify.log"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc.run([sys.executable, "-c", IMPORTS, *modules], log=log, env=env)
    return log


def test_a_verify_import_check_log_gives_no_finding(tmp_path):
    log = _verify_log(tmp_path, "json", "textwrap", "envbuilder")
    assert '"ok": true' in log.read_text()
    assert findings(log) == []


def test_a_failed_verify_import_names_its_cause(tmp_path):
    (tmp_path / "fake_ext.py").write_text(
        'raise ImportError("libc10.so: cannot open shared object file: No such file or directory")\n'
    )
    log = _verify_log(tmp_path, "fake_ext")
    assert findings(log) == ["import-torch-first"]


# --- the same failure in nvcc's and g++'s words ------------------------------------------------

SOURCES = {
    "flt-max-undefined": "float biggest() { return FLT_MAX; }\n",
    "cstdint-missing": "#include <vector>\nstruct Buffers { std::uintptr_t base; uint32_t* keys; uint64_t* ids; };\n",
    "thrust-sequence": "#include <thrust/device_vector.h>\n"
    "void ramp(thrust::device_vector<int>& v) { thrust::sequence(v.begin(), v.end()); }\n",
}


def _compile(argv: list[str], locale: str) -> str:
    env = {**os.environ, "LC_ALL": locale, "LANG": locale}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0, "the source was meant not to compile"
    return done.stdout + done.stderr


@pytest.mark.compile
@pytest.mark.parametrize("sid", sorted(SOURCES))
@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])  # g++ quotes names in ASCII in C, in U+2018/2019 in UTF-8
def test_nvcc_and_gxx_wordings_of_one_failure_are_both_found(tmp_path, cuda, sid, locale):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("no g++ on PATH to compile the .cpp twin")
    for name in ("x.cu", "x.cpp"):
        (tmp_path / name).write_text(SOURCES[sid])
    nvcc = _compile([str(cuda.nvcc), "-std=c++17", "-c", str(tmp_path / "x.cu"), "-o", os.devnull], locale)
    includes = [f"-I{cuda.root / 'include'}", f"-I{cuda.root / 'include' / 'cccl'}"]  # thrust for g++ too
    host = _compile([gxx, "-std=c++17", *includes, "-c", str(tmp_path / "x.cpp"), "-o", os.devnull], locale)
    assert [f.id for f in diagnose.scan(nvcc)][:1] == [sid], nvcc
    assert [f.id for f in diagnose.scan(host)][:1] == [sid], host
