"""Offline bundles, as a user makes and uses them (child processes). The offline build runs in a
network namespace with no interfaces (`unshare -n`), so any attempted download fails the test.

- a recipe whose source is a git repository with nested submodules (made here, file:// URLs),
  whose torch and requirements come from indexes on 127.0.0.1: lock, bundle, then move the
  repositories and indexes away and build from the bundle offline: same commits, same packages
  as a --locked build of the same lock;
- one changed byte in the bundle: the build names the file; a bundle for another Python: exit 2;
- --split SIZE parts re-joined, a missing part named;
- the canary with its extension wheel in the bundle and torch left out for a base that has it
  (the session's canary env): built offline, nothing compiled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyindex import PyIndex

from envbuilder.lock.tomlfile import read_lock
from envbuilder.lock.tools import ensure_tools

from helpers import git, make_repo, run_cli, write_recipe

FAKE_TORCH = "import types\nversion = types.SimpleNamespace(cuda='13.0')\n_C = types.SimpleNamespace()\n"
pytestmark = [pytest.mark.network, pytest.mark.nvcc]  # the bundle's tools come from the registry; toolchain needs nvcc


def can_unshare() -> str | None:
    """Why no network namespace can be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    done = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    return (
        None
        if done.returncode == 0
        else f"unshare -n fails here: {done.stderr.strip()} (needs root or user namespaces)"
    )


@pytest.fixture(scope="module")
def offline():
    """argv prefix that runs a command with no network at all. Under CI the skip is a failure."""
    why = can_unshare()
    if why:
        if os.environ.get("ENVBUILDER_REQUIRE_NETNS"):
            pytest.fail(why + "; ENVBUILDER_REQUIRE_NETNS=1 demands a network namespace")
        pytest.skip(why)
    return ["unshare", "-n"]


def offline_cli(offline: list[str], *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*offline, sys.executable, "-m", "envbuilder", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=1800,
    )


@pytest.fixture(autouse=True)
def tools():
    return ensure_tools()


def repos(base: Path) -> dict[str, str]:
    """a (the method) has b as a submodule, which has c: nested, by file:// URL."""
    c = make_repo(base / "c", {"c.txt": "c1"})
    make_repo(base / "b", {"b.txt": "b1"})
    git("submodule", "add", "-q", (base / "c").as_uri(), "third_party/c", cwd=base / "b")
    git("commit", "-q", "-m", "add c", cwd=base / "b")
    b = git("rev-parse", "HEAD", cwd=base / "b")
    make_repo(base / "a", {"train.py": "print('a')\n"})
    git("submodule", "add", "-q", (base / "b").as_uri(), "submodules/b", cwd=base / "a")
    git("commit", "-q", "-m", "add b", cwd=base / "a")
    return {"a": git("rev-parse", "HEAD", cwd=base / "a"), "b": b, "c": c}


def recipe(tmp_path: Path, url: str, commit: str, torch_index: str) -> Path:
    data = tmp_path / "data"
    write_recipe(
        data,
        "demo",
        f"""\
name: demo
summary: a git recipe whose torch and requirements come from test indexes
source:
  git: {url}
  commit: {commit}
python: ">=3.10"
torch:
  cu130: {{torch: "==2.11.0", index: "{torch_index}"}}
requirements:
  - pkg
""",
    )
    return data


def test_a_bundle_builds_offline_what_the_lock_names(tmp_path, cuda, tools, offline):
    up = tmp_path / "up"
    commits = repos(up)
    cache = {"ENVBUILDER_CACHE": str(tmp_path / "cache")}
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tools").symlink_to(tools.venv.parent)
    with PyIndex(tmp_path / "torch") as torch_index, PyIndex(tmp_path / "pypi") as index:
        torch_index.publish("torch", "2.11.0", payload=FAKE_TORCH)
        index.publish("dep", "1.0")
        index.publish("pkg", "1.0", requires=["dep"])
        data = recipe(tmp_path, (up / "a").as_uri(), commits["a"], torch_index.url)
        common = ["demo", "--recipes", str(data), "--arch", "12.0"]
        lock = tmp_path / "pylock.demo.toml"
        made = run_cli("lock", *common, "--no-pip-config", "--default-index", index.url, "-o", str(lock), env=cache)
        assert made.returncode == 0, made.stderr
        locked = run_cli("build", *common, "--locked", str(lock), "--prefix", str(tmp_path / "locked"), env=cache)
        assert locked.returncode == 0, locked.stderr
        out = tmp_path / "usb" / "demo"
        bundled = run_cli("bundle", *common[:3], "--locked", str(lock), "--output", str(out), env=cache)
        assert bundled.returncode == 0, bundled.stderr
        assert "files," in bundled.stdout and "tools/pip-" in bundled.stdout  # its size and its largest files
    shutil.move(up, tmp_path / "gone")  # the repositories and the indexes are gone: only the bundle is left
    fresh = {"ENVBUILDER_CACHE": str(tmp_path / "offline-cache"), "ENVBUILDER_HOME": str(tmp_path / "home")}

    built = offline_cli(
        offline, "build", "demo", "--bundle", str(out), "--prefix", str(tmp_path / "off"), "--json", env=fresh
    )
    assert built.returncode == 0, built.stderr
    manifest = json.loads((tmp_path / "off" / "envbuilder.manifest.json").read_text())
    assert manifest["source"]["commit"] == commits["a"]
    assert [(s["path"], s["commit"]) for s in manifest["source"]["submodules"]] == [
        ("submodules/b", commits["b"]),
        ("submodules/b/third_party/c", commits["c"]),
    ]
    assert (tmp_path / "off/src/demo/submodules/b/third_party/c/c.txt").read_text() == "c1"
    record = lambda prefix: {p.pin for p in read_lock(prefix / ".envbuilder" / "pylock.installed.toml").packages}  # noqa: E731
    assert record(tmp_path / "off") == record(tmp_path / "locked") == {p.pin for p in read_lock(lock).packages}

    # one changed byte: named, and nothing is built
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    wheel = next((damaged / "wheels").glob("pkg-*.whl"))
    blob = bytearray(wheel.read_bytes())
    blob[len(blob) // 2] ^= 1
    wheel.write_bytes(bytes(blob))
    refused = offline_cli(
        offline, "build", "demo", "--bundle", str(damaged), "--prefix", str(tmp_path / "x"), env=fresh
    )
    assert refused.returncode == 1
    assert f"wheels/{wheel.name} is damaged: sha256 expected" in " ".join(refused.stderr.split())
    assert not (tmp_path / "x").exists()

    # a bundle for another Python
    other = tmp_path / "other"
    shutil.copytree(out, other)
    data = json.loads((other / "bundle.json").read_text())
    data["target"]["python"] = "3.9"
    (other / "bundle.json").write_text(json.dumps(data))
    subprocess.run(
        [
            "bash",
            "-c",
            f"cd {other} && grep -v ' bundle.json$' SHA256SUMS > S && sha256sum bundle.json >> S && mv S SHA256SUMS",
        ],
        check=True,
    )
    wrong = offline_cli(offline, "build", "demo", "--bundle", str(other), "--prefix", str(tmp_path / "y"), env=fresh)
    assert wrong.returncode == 2
    assert "the bundle is for Python 3.9" in wrong.stderr
    assert not (tmp_path / "y" / "envbuilder.manifest.json").exists()


def test_split_parts_join_and_a_missing_part_is_named(tmp_path, cuda, tools):
    up = tmp_path / "up"
    commits = repos(up)
    with PyIndex(tmp_path / "torch") as torch_index, PyIndex(tmp_path / "pypi") as index:
        torch_index.publish("torch", "2.11.0", payload=FAKE_TORCH)
        index.publish("pkg", "1.0", payload="# " + "x" * 300_000 + "\n")  # a wheel big enough for three parts
        data = recipe(tmp_path, (up / "a").as_uri(), commits["a"], torch_index.url)
        common = ["demo", "--recipes", str(data), "--arch", "12.0"]
        lock = tmp_path / "pylock.demo.toml"
        assert (
            run_cli("lock", *common, "--no-pip-config", "--default-index", index.url, "-o", str(lock)).returncode == 0
        )
        out = tmp_path / "b" / "demo"
        # relative paths, as a user types them (the bundle's cache is a file:// remote, which must be absolute)
        done = run_cli(
            "bundle",
            *common[:3],
            "--locked",
            lock.name,
            "--output",
            "b/demo",
            "--split",
            "100K",
            "--json",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
    index_file = Path(json.loads(done.stdout)["parts"])
    parts = json.loads(index_file.read_text())["parts"]
    assert len(parts) >= 3 and all(p["size"] <= 100 * 1024 for p in parts)
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in [index_file, *(index_file.parent / q["file"] for q in parts)]:
        shutil.copy(p, moved / p.name)
    (moved / parts[1]["file"]).unlink()
    missing = run_cli("bundle", "join", str(moved / index_file.name), "--output", str(tmp_path / "j1"))
    assert missing.returncode == 2 and parts[1]["file"] in missing.stderr
    shutil.copy(index_file.parent / parts[1]["file"], moved / parts[1]["file"])
    joined = run_cli("bundle", "join", f"moved/{index_file.name}", "--output", "j2", cwd=tmp_path)
    assert joined.returncode == 0, joined.stderr
    assert (tmp_path / "j2" / "demo" / "SHA256SUMS").read_text() == (out / "SHA256SUMS").read_text()


@pytest.mark.build
def test_the_canary_offline_with_its_extension_from_the_bundle_and_torch_from_the_base(canary_env, tmp_path, offline):
    """The session's canary env stands for a base with torch (the GPU machine's /opt/torch)."""
    cache = {"ENVBUILDER_CACHE": str(canary_env.parent.parent / "cache")}  # where its wheel was cached
    # test_build rebuilds the session env for "9.0;12.0" into the session's default cache: bring
    # it back to the fixture's "--arch 12.0" (its wheel comes from the fixture's cache, nothing
    # compiles), so that the env's extension wheel is in the cache this bundle reads.
    again = run_cli(
        "build", "canary", "--arch", "12.0", "--prefix", str(canary_env), "--installer", "pip", "--json", env=cache
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((canary_env / "envbuilder.manifest.json").read_text())["archs"] == ["12.0"]
    out = tmp_path / "canary-bundle"
    made = run_cli(
        "bundle",
        "canary",
        "--from-env",
        str(canary_env),
        "--without",
        "torch",
        "--output",
        str(out),
        "--json",
        env=cache,
    )
    assert made.returncode == 0, made.stderr
    info = json.loads(made.stdout)
    assert info["extensions"] == {"canary": "bundled"} and any(w.startswith("torch==") for w in info["without"])
    assert not list((out / "wheels").glob("torch-*")) and not list((out / "wheels").glob("nvidia_*"))
    base = canary_env / "venv" / "bin" / "python"
    fresh = {"ENVBUILDER_CACHE": str(tmp_path / "offline-cache")}
    args = [
        "--bundle",
        str(out),
        "--python",
        str(base),
        "--system-site-packages",
        "--prefix",
        str(tmp_path / "env"),
        "--json",
    ]
    built = offline_cli(offline, "build", "canary", *args, env=fresh)
    assert built.returncode == 0, built.stderr
    manifest = json.loads((tmp_path / "env" / "envbuilder.manifest.json").read_text())
    (ext,) = manifest["extensions"]
    assert ext["cache"] == "shared"  # from the bundle: nothing compiled
    assert manifest["torch"]["version"].startswith(
        json.loads((canary_env / "envbuilder.manifest.json").read_text())["torch"]["version"]
    )
