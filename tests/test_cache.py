"""The wheel cache (verified before use, atomic entries, out-of-space handled) and the reaping of
processes a killed build left behind."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from envbuilder import cache, proc
from envbuilder.host.compat import parse_arch_list

from helpers import fatbin_container, fatbin_entry, make_elf

ARCHS = parse_arch_list("12.0")


def wheel(tmp_path: Path, sm: int = 120, name: str = "ext-0.1-cp311-cp311-linux_x86_64.whl") -> Path:
    so = make_elf({".nv_fatbin": fatbin_container([fatbin_entry(2, sm)])})
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ext/_C.cpython-311-x86_64-linux-gnu.so", so)
        zf.writestr("ext/__init__.py", "")
    return path


def test_store_then_lookup(tmp_path):
    store = cache.WheelCache(tmp_path / "cache" / "wheels")
    key = cache.wheel_key({"a": 1})
    assert store.lookup(key, ARCHS) == (None, "not cached")
    assert store.store(key, wheel(tmp_path), {"a": 1}, ARCHS) == "cached"
    found, why = store.lookup(key, ARCHS)
    assert why == "cached" and found.name.endswith(".whl")
    entry = json.loads((found.parent / cache.ENTRY).read_text())
    assert entry["sass"] == {"ext/_C.cpython-311-x86_64-linux-gnu.so": ["sm_120"]}
    assert (tmp_path / "cache" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert store.store(key, wheel(tmp_path), {"a": 1}, ARCHS) == "already cached"


def test_a_corrupt_entry_is_never_used(tmp_path):
    store = cache.WheelCache(tmp_path / "wheels")
    key = cache.wheel_key({"a": 2})
    store.store(key, wheel(tmp_path), {}, ARCHS)
    found, _ = store.lookup(key, ARCHS)
    found.write_bytes(found.read_bytes()[:-10])  # truncated on disk
    assert store.lookup(key, ARCHS) == (None, "cache entry damaged (checksum or archs): rebuilt")
    assert not found.parent.exists()


def test_an_entry_without_the_arch_is_rebuilt(tmp_path):
    store = cache.WheelCache(tmp_path / "wheels")
    key = cache.wheel_key({"a": 3})
    store.store(key, wheel(tmp_path, sm=86), {}, parse_arch_list("8.6"))
    found, why = store.lookup(key, ARCHS)
    assert found is None and "lacks" in why


def test_out_of_space_leaves_no_entry(tmp_path, monkeypatch):
    store = cache.WheelCache(tmp_path / "wheels")
    key = cache.wheel_key({"a": 4})

    def full(src, dst, **kwargs):
        Path(dst).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.shutil, "copyfile", full)
    status = store.store(key, wheel(tmp_path), {}, ARCHS)
    assert status.startswith("not cached: no space left in") and "ENVBUILDER_CACHE" in status
    assert store.lookup(key, ARCHS) == (None, "not cached")
    assert not list((tmp_path / "wheels").rglob(".partial-*"))


def test_reap_stops_what_a_killed_parent_left(tmp_path):
    """A parent runs `sleep` through proc.run and is killed with SIGKILL: the sleep keeps running
    in its own session until reap() stops it."""
    track = tmp_path / "child.json"
    script = (
        "import sys; from pathlib import Path; from envbuilder import proc; "
        f"proc.run(['sleep', '300'], log=Path({str(tmp_path / 'log')!r}), track=Path({str(track)!r}))"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(200):
        if track.exists():
            break
        time.sleep(0.05)
    session = json.loads(track.read_text())["session"]
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert Path(f"/proc/{session}").exists()  # the orphan lives on
    assert proc.reap(track) == [session]
    assert not Path(f"/proc/{session}").exists() or "Z" in Path(f"/proc/{session}/stat").read_text().split(")")[1][:3]
    assert not track.exists()


def test_a_second_build_of_the_same_env_is_refused(tmp_path):
    """Another process holds the env's lock; the CLI says who and exits 1, touching nothing."""
    from helpers import run_cli

    prefix = tmp_path / "env"
    (prefix / ".envbuilder").mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from pathlib import Path; from envbuilder.execute import EnvLock\n"
         f"with EnvLock(Path({str(prefix / '.envbuilder' / 'lock')!r})):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_cli("build", "canary", "--arch", "12.0", "--prefix", str(prefix))
        assert result.returncode == 1
        assert f"another envbuilder process (pid {holder.pid}) is building" in result.stderr
        assert sorted(p.name for p in (prefix / ".envbuilder").iterdir()) == ["lock"]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04garbage"])
def test_unreadable_wheels_are_damaged_entries(tmp_path, data):
    store = cache.WheelCache(tmp_path / "wheels")
    key = cache.wheel_key({"d": len(data)})
    store.store(key, wheel(tmp_path), {}, ARCHS)
    found, _ = store.lookup(key, ARCHS)
    entry = json.loads((found.parent / cache.ENTRY).read_text())
    found.write_bytes(data)
    entry["sha256"] = __import__("hashlib").sha256(data).hexdigest()  # even a matching checksum
    (found.parent / cache.ENTRY).write_text(json.dumps(entry))
    assert store.lookup(key, ARCHS)[0] is None


def test_the_key_ignores_which_env_builds(tmp_path):
    """Two envs with their own torch put their own site-packages/nvidia/*/include on CPATH (a
    toolkit from PyPI wheels lacks those headers); the wheel one compiled must serve the other."""
    from envbuilder.steps.extensions import _relevant_env, key_inputs

    source = tmp_path / "src"
    source.mkdir()
    (source / "setup.py").write_text("from setuptools import setup\n")
    toolchain = {"python": {"abi": "cp312"}, "nvcc": "13.0.88", "gcc": "12.2.0"}
    torch = {"version": "2.14.1", "cuda": "13.0"}

    def key(prefix: Path, cpath: str) -> str:
        build_env = {"TORCH_CUDA_ARCH_LIST": "12.0", "CPATH": cpath, "MAX_JOBS": "2"}
        env = _relevant_env(build_env, {"TORCH_CUDA_ARCH_LIST": "12.0", "MAX_JOBS": "2"}, prefix)
        return cache.wheel_key(key_inputs("canary", "spec", source, toolchain, torch, env))

    site = "venv/lib/python3.12/site-packages/nvidia/cusparse/include"
    one, two = tmp_path / "env1", tmp_path / "env2"
    assert key(one, f"{one}/{site}") == key(two, f"{two}/{site}")
    assert key(one, f"{one}/{site}") != key(one, "/opt/other/include")  # a different header set still counts
