"""`envbuilder lock` as a user runs it (a child process), against a real index on 127.0.0.1:
publish 1.0 and lock; publish 1.1: `--check` reports `pkg: 1.0 -> 1.1` and exits 1; a re-lock
keeps 1.0; --upgrade-package moves it."""

from __future__ import annotations

import hashlib
import json

import pytest
from pyindex import PyIndex

from envbuilder.lock.tomlfile import read_lock

from conftest import run_cli
from helpers import write_recipe

pytestmark = pytest.mark.network  # envbuilder's own pip and uv come from the package registry


def recipe(tmp_path, torch_index: str, requirements: tuple[str, ...] = ("pkg",)) -> None:
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
{"".join(f"  - {r!r}" + chr(10) for r in requirements)}""",
    )


def lock_demo(tmp_path, index: PyIndex, *more: str) -> list[str]:
    """`envbuilder lock demo` on the test recipe, with only the test index (no pip config)."""
    return ["lock", "demo", "--recipes", str(tmp_path), "--arch", "12.0", "--cuda", "13.0", "--no-pip-config",
            "--default-index", index.url, *more]  # fmt: skip


def test_lock_check_and_upgrade(tmp_path):
    with PyIndex(tmp_path / "pypi") as index, PyIndex(tmp_path / "torch") as torch_index:
        torch_index.publish("torch", "2.9.1+cu130")
        index.publish("pkg", "1.0")
        recipe(tmp_path, torch_index.url)
        out = tmp_path / "pylock.demo.toml"
        base = lock_demo(tmp_path, index, "--output", str(out))
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
        done = run_cli(*lock_demo(tmp_path, index, "--check", str(bad)), timeout=600)
    assert done.returncode == 2
    assert f"{bad}:4: packages[0]" in done.stderr or f"{bad}:3: packages[0]" in done.stderr, done.stderr


def test_lock_on_a_base_takes_its_versions_drops_a_misfit_and_names_the_freeze(tmp_path):
    """--base FREEZE: the base's version where the recipe allows it, another (named) where it does
    not; the lock records the freeze it stood on, never the temporary constraints made from it,
    so locking twice gives the same bytes and leaves nothing behind."""
    with PyIndex(tmp_path / "pypi") as index, PyIndex(tmp_path / "torch") as torch_index:
        torch_index.publish("torch", "2.9.1+cu130")
        for version in ("1.0", "1.1", "1.2"):
            index.publish("pkg", version)
        for version in ("2.0", "2.1", "3.0"):
            index.publish("dep", version)
        recipe(tmp_path, torch_index.url, requirements=("pkg", "dep<3"))
        freeze = tmp_path / "freeze.txt"
        freeze.write_text(
            "pkg==1.1\ndep==3.0\ntorch==2.9.1+cu130\n-e git+https://example.invalid/x.git#egg=x\n"
            "local-thing @ file:///nowhere/local_thing-1.0-py3-none-any.whl\nunrelated==5.0\n"
        )
        temp = tmp_path / "tmp"
        temp.mkdir()
        base = lock_demo(tmp_path, index, "--base", str(freeze))
        outputs = [tmp_path / "first.toml", tmp_path / "second.toml"]
        for out in outputs:
            done = run_cli(*base, "--output", str(out), env={"TMPDIR": str(temp)}, timeout=600)
            assert done.returncode == 0, done.stderr
            assert "the base's dep 3.0 does not fit the recipe" in done.stderr, done.stderr
        lock = read_lock(outputs[0])
        assert lock.pins["pkg"] == "1.1" and lock.pins["dep"] == "2.1", lock.pins
        resolution = lock.envbuilder.resolution
        assert dict(resolution.base) == {
            "freeze": str(freeze),
            "sha256": hashlib.sha256(freeze.read_bytes()).hexdigest(),
        }
        assert not any("base-constraints" in c for c in resolution.constraints), resolution.constraints
        text = outputs[0].read_text()
        assert "envbuilder-base-" not in text and str(temp) not in text
        assert text == outputs[1].read_text()
        assert not [p.name for p in temp.iterdir() if p.name.startswith("envbuilder-base-")]


def test_a_malformed_base_freeze_is_named_by_line(tmp_path):
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("pkg==1.0\nthis is not a requirement\n")
    with PyIndex(tmp_path / "pypi") as index:
        index.publish("pkg", "1.0")
        recipe(tmp_path, index.url)
        done = run_cli(
            *lock_demo(tmp_path, index, "--base", str(freeze), "--output", str(tmp_path / "out.toml")), timeout=600
        )
    assert done.returncode == 2, done.stderr
    assert f"{freeze}:2: not a pip freeze line" in done.stderr, done.stderr
    assert not (tmp_path / "out.toml").exists()
