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


# --- last use, list, gc, and the per-key claim --------------------------------------------------


def stored(store: cache.WheelCache, tmp_path: Path, n: int, recipe: str | None = "demo") -> str:
    key = cache.wheel_key({"n": n, "archs": "12.0", "extension": f"ext{n}"})
    store.store(key, wheel(tmp_path / f"w{n}"), {"n": n, "archs": "12.0", "extension": f"ext{n}"}, ARCHS,
                metadata={"recipe": recipe} if recipe else None)  # fmt: skip
    return key


def set_last_use(store: cache.WheelCache, key: str, when: float) -> None:
    os.utime(store._dir(key) / cache.LAST_USE, (when, when))


def test_entries_record_recipes_and_last_use(tmp_path):
    (tmp_path / "w0").mkdir()
    store = cache.WheelCache(tmp_path / "wheels")
    key = stored(store, tmp_path, 0)
    set_last_use(store, key, 1_000_000)
    (entry,) = store.entries()
    assert (entry.key, entry.extension, entry.archs, entry.recipes) == (key, "ext0", "12.0", ["demo"])
    assert entry.size > entry.wheel.stat().st_size and entry.last_use == 1_000_000
    store.lookup(key, ARCHS, recipe="other")  # a hit from another recipe
    (entry,) = store.entries()
    assert entry.recipes == ["demo", "other"] and entry.last_use > 1_000_000


def test_gc_removes_least_recently_used_first(tmp_path):
    for n in range(3):
        (tmp_path / f"w{n}").mkdir()
    store = cache.WheelCache(tmp_path / "wheels")
    keys = [stored(store, tmp_path, n) for n in range(3)]
    for age, key in zip((3000, 1000, 2000), keys, strict=True):
        set_last_use(store, key, 1_000_000 - age)
    store.lookup(keys[0], ARCHS)  # the oldest is used now: it stays
    size = next(e.size for e in store.entries() if e.key == keys[0])
    removed, kept = store.gc(size + 1)
    assert [e.key for e in removed] == [keys[2], keys[1]]
    assert [e.key for e in store.entries()] == [keys[0]] and kept == size
    assert store.lookup(keys[1], ARCHS) == (None, "not cached")


def test_gc_keeps_an_entry_a_build_holds(tmp_path):
    (tmp_path / "w0").mkdir()
    store = cache.WheelCache(tmp_path / "wheels")
    key = stored(store, tmp_path, 0)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from envbuilder import cache\n"
         f"with cache.WheelCache(Path({str(store.root)!r})).claim({key!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert store.gc(0)[0] == []
        assert store.lookup(key, ARCHS)[1] == "cached"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert [e.key for e in store.gc(0)[0]] == [key]


def test_parse_size():
    assert cache.parse_size("20G") == 20 * 1024**3
    assert cache.parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert cache.parse_size("500m") == 500 * 1024**2 and cache.parse_size("123") == 123
    with pytest.raises(cache.InputError, match="not a size"):
        cache.parse_size("lots")


CLAIMER = """
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from helpers import cuda_wheel
from envbuilder import cache
from envbuilder.host.compat import parse_arch_list
root, key, hold, log = sys.argv[1:5]
store = cache.WheelCache(Path(root))
archs = parse_arch_list("12.0")
print("trying", flush=True)
with store.claim(key) as claim:
    found, why = store.lookup(key, archs)
    if found is None:
        print("compiling", flush=True)
        while not Path(hold).exists():  # the test says when this "compile" ends
            time.sleep(0.01)
        built = cuda_wheel(Path(root).parent / f"build-{{os.getpid()}}")
        store.store(key, built, {{"archs": "12.0"}}, archs)
        outcome = "compiled"
    else:
        outcome = "reused"
with open(log, "a") as f:
    f.write(json.dumps({{"pid": os.getpid(), "outcome": outcome, "waited": claim.waited}}) + "\\n")
"""


def blocked_on_flock(pid: int) -> bool:
    """/proc/locks lists a process waiting for a lock with '->'."""
    return any(
        line.split()[1] == "->" and line.split()[5] == str(pid)
        for line in Path("/proc/locks").read_text().splitlines()
        if len(line.split()) > 5
    )


def test_two_builds_needing_one_missing_key_compile_it_once(tmp_path):
    """Process A claims the key and "compiles"; process B asks for the same key, waits on the
    lock (seen in /proc/locks), and then reuses A's wheel instead of compiling it again."""
    root, hold, log = tmp_path / "wheels", tmp_path / "hold", tmp_path / "log"
    key = cache.wheel_key({"archs": "12.0"})
    script = CLAIMER.format(tests=str(Path(__file__).parent))
    argv = [sys.executable, "-c", script, str(root), key, str(hold), str(log)]
    a = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert a.stdout.readline().strip() == "trying" and a.stdout.readline().strip() == "compiling"
    b = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert b.stdout.readline().strip() == "trying"
    for _ in range(2000):
        if blocked_on_flock(b.pid):
            break
        time.sleep(0.005)
    else:
        pytest.fail("the second build never waited for the key's lock")
    hold.touch()
    for p in (a, b):
        p.wait(timeout=60)
        p.stdout.close()
    outcomes = {r["pid"]: (r["outcome"], r["waited"]) for r in map(json.loads, log.read_text().splitlines())}
    assert outcomes == {a.pid: ("compiled", False), b.pid: ("reused", True)}


def test_cli_cache_list_and_gc(tmp_path):
    from helpers import run_cli

    (tmp_path / "w0").mkdir()
    store = cache.WheelCache(tmp_path / "c" / "wheels")
    key = stored(store, tmp_path, 0)
    env = {"ENVBUILDER_CACHE": str(tmp_path / "c")}
    listed = run_cli("cache", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["key"], row["extension"], row["archs"], row["recipes"]) == (key, "ext0", "12.0", ["demo"])
    assert row["size"] > 0 and row["last_use"] > 0
    text = run_cli("cache", "list", env=env)
    assert key[:12] in text.stdout and "ext0" in text.stdout
    gc = run_cli("cache", "gc", "--max-size", "0", "--json", env=env)
    assert gc.returncode == 0 and [e["key"] for e in json.loads(gc.stdout)["removed"]] == [key]
    assert run_cli("cache", "gc", "--max-size", "lots", env=env).returncode == 2
