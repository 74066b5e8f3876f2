"""The executor's bookkeeping: skip, resume, re-run dependents, lock, failure records, diagnosis.

The step functions here are stand-ins that record their calls; the real steps run in
test_build.py. This file tests only the executor's decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envbuilder.context import StepContext
from envbuilder.errors import CommandFailed, EnvLocked, InputError, StepFailed
from envbuilder.execute import EnvLock, execute
from envbuilder.plan import Options, make_plan
from envbuilder.recipe.catalog import Catalog
from envbuilder.steps import NAMES

from helpers import host

CANARY = Catalog.default().recipe("canary")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.manifest_seen: dict[str, bool] = {}

    def steps(self) -> dict:
        def make(name: str):
            def step(ctx: StepContext, inputs: object, deps: object) -> dict:
                self.calls.append(name)
                self.manifest_seen[name] = ctx.layout.manifest.exists()
                if name in self.fail:
                    with ctx.log.open("a") as log:
                        log.write('nvcc output...\nsimple_knn.cu(90): error: identifier "FLT_MAX" is undefined\n')
                    raise self.fail.pop(name)
                if name == "venv":
                    ctx.layout.python.parent.mkdir(parents=True, exist_ok=True)
                    ctx.layout.python.write_text("")
                if name == "sources":
                    (ctx.layout.src / "demo").mkdir(parents=True, exist_ok=True)
                    return {"root": str(ctx.layout.src / "demo")}
                if name == "manifest":
                    ctx.layout.manifest.write_text("{}")
                return {"ran": name}

            return step

        return {n: make(n) for n in ALL}


def plan(prefix: Path, arch: str = "12.0"):
    return make_plan(CANARY, host(), Options(arch=arch, prefix=prefix))


ALL = list(NAMES)  # the one step list


def test_runs_all_then_nothing(tmp_path):
    rec = Recorder()
    result = execute(plan(tmp_path / "env"), runners=rec.steps())
    assert rec.calls == ALL and [s.status for s in result.steps] == ["done"] * 10
    state = json.loads((tmp_path / "env/.envbuilder/state.json").read_text())
    assert {k: v["status"] for k, v in state["steps"].items()} == dict.fromkeys(ALL, "done")
    rec.calls.clear()
    result = execute(plan(tmp_path / "env"), runners=rec.steps())
    assert rec.calls == ["assets"]  # assets are re-checked every time; they found the same
    assert [s.status for s in result.steps] == ["skipped"] * 7 + ["checked", "skipped", "skipped"]


def test_an_asset_change_rewrites_the_manifest(tmp_path):
    rec = Recorder()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    steps = rec.steps()
    steps["assets"] = lambda ctx, inputs, deps: {"assets": ["flame now present"]}
    rec.calls.clear()
    result = execute(plan(tmp_path / "env"), runners=steps)
    assert [s.name for s in result.steps if s.status == "done"] == ["assets", "smoke", "manifest"]


def test_changed_arch_reruns_only_what_depends_on_it(tmp_path):
    rec = Recorder()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    rec.calls.clear()
    execute(plan(tmp_path / "env", "9.0;12.0"), runners=rec.steps())
    assert rec.calls == ["extensions", "verify", "assets", "smoke", "manifest"]
    assert rec.manifest_seen["extensions"] is False  # not "ready" while being changed


def test_failure_is_recorded_and_resumed(tmp_path):
    rec = Recorder()
    rec.fail["extensions"] = CommandFailed(
        "command failed (exit 1): pip wheel", argv=["pip"], returncode=1, tail="error"
    )
    with pytest.raises(StepFailed) as info:
        execute(plan(tmp_path / "env"), runners=rec.steps())
    err = info.value
    assert err.step == "extensions" and err.log.name == "06-extensions.log"
    assert [d["id"] for d in err.diagnoses] == ["flt-max-undefined"]
    assert not (tmp_path / "env/envbuilder.manifest.json").exists()
    state = json.loads((tmp_path / "env/.envbuilder/state.json").read_text())
    assert state["steps"]["extensions"]["status"] == "failed"
    rec.calls.clear()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    assert rec.calls == ["extensions", "verify", "assets", "smoke", "manifest"]


def test_interrupt_leaves_step_undone(tmp_path):
    rec = Recorder()
    rec.fail["extensions"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        execute(plan(tmp_path / "env"), runners=rec.steps())
    rec.calls.clear()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    assert rec.calls == ["extensions", "verify", "assets", "smoke", "manifest"]


def test_a_package_install_cut_off_rebuilds_the_venv(tmp_path):
    """kill -9 during `wheels` leaves its record at "running": the venv is not trusted."""
    rec = Recorder()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    state_file = tmp_path / "env/.envbuilder/state.json"
    state = json.loads(state_file.read_text())
    state["steps"]["wheels"]["status"] = "running"
    state_file.write_text(json.dumps(state))
    rec.calls.clear()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    assert rec.calls == ["venv", "wheels", "patches", "extensions", "verify", "assets", "smoke", "manifest"]


def test_deleted_venv_rebuilds_it_and_its_dependents(tmp_path):
    rec = Recorder()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    (tmp_path / "env/venv/bin/python").unlink()
    rec.calls.clear()
    execute(plan(tmp_path / "env"), runners=rec.steps())
    assert rec.calls == ["venv", "wheels", "patches", "extensions", "verify", "assets", "smoke", "manifest"]


def test_internal_error_keeps_traceback(tmp_path):
    rec = Recorder()
    rec.fail["verify"] = ValueError("boom")
    with pytest.raises(StepFailed, match="internal error") as info:
        execute(plan(tmp_path / "env"), runners=rec.steps())
    assert "ValueError: boom" in info.value.log.read_text()


def test_lock_refuses_a_second_build(tmp_path):
    prefix = tmp_path / "env"
    (prefix / ".envbuilder").mkdir(parents=True)
    with EnvLock(prefix / ".envbuilder/lock"), pytest.raises(EnvLocked, match="another envbuilder process"):
        execute(plan(prefix), runners=Recorder().steps())


def test_refuses_a_foreign_directory(tmp_path):
    prefix = tmp_path / "mine"
    prefix.mkdir()
    (prefix / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="not an envbuilder environment"):
        execute(plan(prefix), runners=Recorder().steps())
    assert sorted(p.name for p in prefix.iterdir()) == ["thesis.tex"]


def test_a_failed_smoke_step_is_diagnosed_from_its_own_log(tmp_path):
    """The smoke step's failure names the smoke command's log; diagnosis reads that one."""
    from envbuilder.errors import SmokeFailed

    own = tmp_path / "smoke-train.log"
    own.write_text(
        "Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    rec = Recorder()
    steps = rec.steps()

    def smoke(ctx, inputs, deps):
        raise SmokeFailed("smoke step train failed: exit 1", log=own)

    steps["smoke"] = smoke
    with pytest.raises(StepFailed) as info:
        execute(plan(tmp_path / "env"), runners=steps)
    assert "cuda-out-of-memory" in [d["id"] for d in info.value.diagnoses]
    assert info.value.log == own
