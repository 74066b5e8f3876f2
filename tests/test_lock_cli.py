"""`envbuilder lock` as a user runs it (a child process), against a real index on 127.0.0.1:
publish 1.0 and lock; publish 1.1: `--check` reports `pkg: 1.0 -> 1.1` and exits 1; a re-lock
keeps 1.0; --upgrade-package moves it."""

from __future__ import annotations

import json

import pytest
from pyindex import PyIndex

from envbuilder.lock.tomlfile import read_lock

from conftest import run_cli
from helpers import write_recipe

pytestmark = pytest.mark.network  # envbuilder's own pip and uv come from the package registry


def recipe(tmp_path, torch_index: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "setup.py").write_text("# a method's tree\n")
    write_recipe(
        tmp_path,
        "demo",
        f"""\
name: demo
summary: a recipe whose torch and requirements come from test indexes
source:
  path: {src}
python: ">=3.10"
torch:
  cu130: {{torch: "==2.9.1", index: "{torch_index}"}}
requirements:
  - pkg
""",
    )


def test_lock_check_and_upgrade(tmp_path):
    with PyIndex(tmp_path / "pypi") as index, PyIndex(tmp_path / "torch") as torch_index:
        torch_index.publish("torch", "2.9.1+cu130")
        index.publish("pkg", "1.0")
        recipe(tmp_path, torch_index.url)
        out = tmp_path / "pylock.demo.toml"
        base = ["lock", "demo", "--recipes", str(tmp_path), "--arch", "12.0", "--cuda", "13.0", "--no-pip-config"]
        base += ["--default-index", index.url, "--output", str(out)]
        done = run_cli(*base, "--json", timeout=600)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert {p["name"]: p["version"] for p in data["packages"]} == {"pkg": "1.0", "torch": "2.9.1+cu130"}
        lock = read_lock(out)
        part = lock.envbuilder
        assert part.recipe == "demo" and part.archs == ("12.0",) and part.toolchain.cuda == "13.0"
        assert part.torch.version == "2.9.1+cu130" and part.torch.index == torch_index.url
        assert part.source.path and part.source.digest

        index.publish("pkg", "1.1")
        check = run_cli(*base[:-2], "--check", str(out), timeout=600)
        assert check.returncode == 1, check.stderr
        assert check.stdout.strip().splitlines() == ["pkg: 1.0 -> 1.1"]

        relock = run_cli(*base, timeout=600)  # an existing lock keeps its versions
        assert relock.returncode == 0, relock.stderr
        assert read_lock(out).pins["pkg"] == "1.0"
        moved = run_cli(*base, "--upgrade-package", "pkg", timeout=600)
        assert moved.returncode == 0, moved.stderr
        assert read_lock(out).pins["pkg"] == "1.1" and "pkg: 1.0 -> 1.1" in moved.stdout
        again = run_cli(*base[:-2], "--check", str(out), timeout=600)
        assert again.returncode == 0 and again.stdout.strip() == ""


def test_malformed_lock_given_to_check_exits_2(tmp_path):
    bad = tmp_path / "pylock.bad.toml"
    bad.write_text('lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "pkg"\n')
    with PyIndex(tmp_path / "pypi") as index:
        index.publish("pkg", "1.0")
        recipe(tmp_path, index.url)
        done = run_cli(
            "lock", "demo", "--recipes", str(tmp_path), "--arch", "12.0", "--cuda", "13.0", "--no-pip-config",
            "--default-index", index.url, "--check", str(bad), timeout=600,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"{bad}:4: packages[0]" in done.stderr or f"{bad}:3: packages[0]" in done.stderr, done.stderr
