"""`envbuilder build --locked` as a user runs it (a child process), against indexes on 127.0.0.1
that the test fills with tiny wheels it builds itself: a stand-in torch (a module that answers
what the wheels step asks: __version__, version.cuda) on a "torch index", and `pkg` on the
regular one. The real toolchain step runs (nvcc), the real venv, resolution and installers.

- publish pkg 1.0 and lock; publish 1.1: an unlocked build takes 1.1, a locked one keeps 1.0;
- a wheel changed on the index after locking: the locked build fails naming the package, the
  expected and the actual sha256, and writes no manifest;
- one lock installed by pip and by uv gives the same name==version set;
- a lock made for another CUDA or Python: exit 2 before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyindex import PyIndex

from envbuilder.lock.tomlfile import read_lock
from envbuilder.lock.tools import Tools, ensure_tools

from helpers import run_cli, write_recipe

pytestmark = [pytest.mark.network, pytest.mark.nvcc]  # envbuilder's own pip and uv come from the registry

FAKE_TORCH = "import types\nversion = types.SimpleNamespace(cuda='13.0')\n_C = types.SimpleNamespace()\n"


@pytest.fixture(autouse=True)
def tools():
    """envbuilder's own pip and uv, installed once from the real registry (the tests' child
    processes are pointed at 127.0.0.1 indexes, which hold neither)."""
    return ensure_tools()


def empty_cache(tmp_path: Path, tools: Tools) -> Path:
    """An ENVBUILDER_CACHE with nothing downloaded or built in it, sharing only the tools."""
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    (cache / "tools").symlink_to(tools.venv.parent)
    return cache


def setup(tmp_path: Path, torch_index: PyIndex, index: PyIndex) -> tuple[list[str], dict[str, str]]:
    torch_index.publish("torch", "2.11.0", payload=FAKE_TORCH)
    index.publish("pkg", "1.0")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("# a method's tree\n")
    write_recipe(
        tmp_path / "data",
        "demo",
        f"""\
name: demo
summary: a recipe whose torch and requirements come from test indexes
source:
  path: {src}
python: ">=3.10"
torch:
  cu130: {{torch: "==2.11.0", index: "{torch_index.url}"}}
requirements:
  - pkg
""",
    )
    # the machine's pip configuration must not leak in: the test's index is the only one
    env = {"PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": index.url, "PIP_FIND_LINKS": "", "PIP_CONSTRAINT": ""}
    return ["--recipes", str(tmp_path / "data"), "--arch", "12.0"], env


def installed(prefix: Path) -> dict[str, str]:
    data = json.loads((prefix / "envbuilder.manifest.json").read_text())
    return {k.lower(): v for k, v in data["packages"].items() if k.lower() in ("pkg", "torch")}


def test_a_lock_keeps_its_versions_and_checks_every_file(tmp_path, cuda, tools):
    with PyIndex(tmp_path / "torch") as torch_index, PyIndex(tmp_path / "pypi") as index:
        common, env = setup(tmp_path, torch_index, index)
        lock = tmp_path / "pylock.demo.toml"
        made = run_cli(
            "lock", "demo", *common, "--no-pip-config", "--default-index", index.url, "-o", str(lock), env=env
        )
        assert made.returncode == 0, made.stderr
        assert read_lock(lock).pins["pkg"] == "1.0"

        index.publish("pkg", "1.1")
        unlocked = run_cli("build", "demo", *common, "--prefix", str(tmp_path / "u"), "--installer", "pip", env=env)
        assert unlocked.returncode == 0, unlocked.stderr
        assert installed(tmp_path / "u") == {"pkg": "1.1", "torch": "2.11.0"}

        locked = run_cli("build", "demo", *common, "--locked", str(lock), "--prefix", str(tmp_path / "a"), env=env)
        assert locked.returncode == 0, locked.stderr
        assert installed(tmp_path / "a") == {"pkg": "1.0", "torch": "2.11.0"}
        check = run_cli(
            "lock", "demo", *common, "--no-pip-config", "--default-index", index.url, "--check", str(lock), env=env
        )
        assert check.returncode == 1 and check.stdout.strip().splitlines() == ["pkg: 1.0 -> 1.1"]

        again = run_cli(
            "build", "demo", *common, "--locked", str(lock), "--prefix", str(tmp_path / "a"), "--json", env=env
        )
        assert again.returncode == 0, again.stderr
        assert {s["status"] for s in json.loads(again.stdout)["steps"]} <= {"skipped", "checked"}

        index.replace("pkg", "1.0")  # the same file name, other bytes
        fresh = {**env, "ENVBUILDER_CACHE": str(empty_cache(tmp_path, tools))}
        broken = run_cli("build", "demo", *common, "--locked", str(lock), "--prefix", str(tmp_path / "b"), env=fresh)
        assert broken.returncode == 1
        want = read_lock(lock).package("pkg").artifact.sha256
        message = " ".join(broken.stderr.split())  # rich wraps long lines
        assert f"pkg: pkg-1.0-py3-none-any.whl does not match the lock: sha256 expected {want}, got " in message, (
            message
        )
        assert not (tmp_path / "b" / "envbuilder.manifest.json").exists()


def test_pip_and_uv_install_one_lock_alike(tmp_path, cuda):
    with PyIndex(tmp_path / "torch") as torch_index, PyIndex(tmp_path / "pypi") as index:
        common, env = setup(tmp_path, torch_index, index)
        index.publish("dep", "2.0")
        index.publish("pkg", "1.0", requires=["dep>=2"])
        lock = tmp_path / "pylock.demo.toml"
        made = run_cli(
            "lock", "demo", *common, "--no-pip-config", "--default-index", index.url, "-o", str(lock), env=env
        )
        assert made.returncode == 0, made.stderr
        sets = []
        for installer in ("pip", "uv"):
            prefix = tmp_path / installer
            args = ["--locked", str(lock), "--prefix", str(prefix), "--installer", installer]
            done = run_cli("build", "demo", *common, *args, env=env)
            assert done.returncode == 0, done.stderr
            record = read_lock(prefix / ".envbuilder" / "pylock.installed.toml")
            sets.append({p.pin for p in record.packages})
        assert sets[0] == sets[1] == {p.pin for p in read_lock(lock).packages}


def test_a_host_that_cannot_meet_the_lock_exits_2_and_writes_nothing(tmp_path, cuda):
    with PyIndex(tmp_path / "torch") as torch_index, PyIndex(tmp_path / "pypi") as index:
        common, env = setup(tmp_path, torch_index, index)
        lock = tmp_path / "pylock.demo.toml"
        made = run_cli(
            "lock", "demo", *common, "--no-pip-config", "--default-index", index.url, "-o", str(lock), env=env
        )
        assert made.returncode == 0, made.stderr
        text = lock.read_text().replace('cuda = "13.0"\ngcc-major', 'cuda = "12.8"\ngcc-major', 1)
        other = tmp_path / "pylock.other.toml"
        other.write_text(text)
        result = run_cli("build", "demo", *common, "--locked", str(other), "--prefix", str(tmp_path / "x"), env=env)
        assert result.returncode == 2
        assert "CUDA" in result.stderr and "12.8" in result.stderr
        assert not (tmp_path / "x").exists()


def test_relative_cache_home_and_prefix_mean_the_current_directory(tmp_path, cuda, tools):
    """ENVBUILDER_CACHE=cache (as nox's session.create_tmp() gives it): the installers read the
    lock envbuilder writes in a temp dir, and resolve a relative path against that folder."""
    with PyIndex(tmp_path / "torch") as torch_index, PyIndex(tmp_path / "pypi") as index:
        common, env = setup(tmp_path, torch_index, index)
        empty_cache(tmp_path, tools)
        relative = {**env, "ENVBUILDER_CACHE": "empty-cache", "ENVBUILDER_HOME": "home"}
        for installer in ("pip", "uv"):
            args = ["--prefix", f"env-{installer}", "--installer", installer]
            done = run_cli("build", "demo", *common, *args, env=relative, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert installed(tmp_path / f"env-{installer}") == {"pkg": "1.0", "torch": "2.11.0"}
        assert list((tmp_path / "empty-cache" / "downloads").rglob("pkg-1.0-py3-none-any.whl"))
