"""Smoke runs: envbuilder's data generator, the checks on what a method's steps produce, assets
that block steps, stand-ins, and the errors around them. The "method" here is two small scripts
written by this test; the real methods run on the GPU (see the closing notes of issue 7)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envbuilder import datasets, smoke
from envbuilder.recipe.catalog import Catalog

from helpers import run_cli

TRAIN = r"""
import json, os, sys, time
from pathlib import Path
data, model = Path(sys.argv[1]), Path(sys.argv[2])
mode = os.environ.get("FAKE_MODE", "good")
frames = json.loads((data / "transforms_train.json").read_text())["frames"]
assert (Path("smoke.cfg").read_text() == "iterations = 30\n"), "the smoke config was not written"
if mode == "crash":
    sys.exit("CUDA error: an illegal memory access was encountered")
if mode == "hang":
    time.sleep(60)
for i in range(1, 31):
    loss = 0.5 if mode == "flat-loss" else 0.5 / i
    print(f"Training progress: {i}/30 [00:01<00:00, 12.5it/s, Loss={loss:.7f}, psnr=20.00]")
if mode != "no-output":
    model.mkdir(parents=True, exist_ok=True)
    (model / "ckpt.txt").write_text(str(len(frames)))
"""

RENDER = r"""
import os, sys
from pathlib import Path
import numpy as np
from PIL import Image
data, model = Path(sys.argv[1]), Path(sys.argv[2])
mode = os.environ.get("FAKE_MODE", "good")
rng = np.random.default_rng(0)
for d in ("renders", "gt"):
    (model / d).mkdir(parents=True, exist_ok=True)
for n, path in enumerate(sorted((data / "train").glob("*.png"))):
    rgba = np.asarray(Image.open(path), dtype=np.float64) / 255
    gt = rgba[..., :3] * rgba[..., 3:]  # composited on black, as the methods do
    render = {
        "good": np.clip(gt + rng.normal(0, 0.01, gt.shape), 0, 1),
        "constant": np.full_like(gt, 0.3),
        "dim": gt * 0.5,
    }[mode]
    for d, image in (("renders", render), ("gt", gt)):
        Image.fromarray((image * 255).round().astype(np.uint8)).save(model / d / f"{n:05d}.png")
print("FPS: 99.0")
"""

RECIPE = """
name: smoke-fixture
summary: a fake method for the smoke-run tests
source: {{path: {src}}}
python: ">=3.9"
torch:
  cu130: {{torch: ">=2.11"}}
assets:
  - name: flame
    path: data/flame/flame2023_no_jaw.pkl
    kind: flame-pkl
    gated: true
    source: https://flame.is.tue.mpg.de/download.php
    register: https://flame.is.tue.mpg.de/register.php
    needed_by: [{needed_by}]
smoke:
  data: dnerf
  files:
    - path: smoke.cfg
      copy_of: base.cfg
      replace: [["iterations = 30000", "iterations = 30"]]
  steps:
    - name: train
      run: ["{{python}}", train.py, "{{data}}", "{{out}}/model"]
      timeout: {timeout}
      outputs: ["{{out}}/model/ckpt.txt"]
      loss: 'Loss=([0-9.]+)'
      measure: {{it_per_s: '([0-9.]+)it/s'}}
    - name: render
      run: ["{{python}}", render.py, "{{data}}", "{{out}}/model"]
      needs: [{needs}]
      images: "{{out}}/model/renders"
      ground_truth: "{{out}}/model/gt"
      psnr_floor: 25
      measure: {{fps: 'FPS: ([0-9.]+)'}}
"""


def fake_env(tmp_path: Path, *, needs: str = "", timeout: int = 60):
    """A recipe, and an 'env' at prefix: its source tree, and a venv python that is this one."""
    src = tmp_path / "method"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    (src / "render.py").write_text(RENDER)
    (src / "base.cfg").write_text("iterations = 30000\n")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "smoke-fixture.yaml").write_text(
        RECIPE.format(src=src, needs=needs, needed_by="preprocess", timeout=timeout)
    )
    recipe = Catalog.default([tmp_path]).recipe("smoke-fixture")
    prefix = tmp_path / "env"
    (prefix / "src").mkdir(parents=True)
    os.symlink(src, prefix / "src" / "smoke-fixture")
    python = prefix / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # a venv of this Python (numpy, Pillow)
    python.chmod(0o755)
    return recipe, prefix


def statuses(result: smoke.SmokeResult) -> dict[str, str]:
    return {s.name: s.status for s in result.steps}


def test_a_good_run_passes_every_check_and_reports_metrics(tmp_path):
    recipe, prefix = fake_env(tmp_path)
    notes: list[str] = []
    result = smoke.run(recipe, prefix, note=notes.append)
    assert statuses(result) == {"train": "ok", "render": "ok"}, result.to_json()
    assert result.exit_code == 0 and not result.stub_driven
    train, render = result.steps
    assert train.metrics["loss_first"] == 0.5 and train.metrics["loss_last"] < 0.02
    assert train.metrics["it_per_s"] == 12.5 and render.metrics["fps"] == 99.0
    assert render.metrics["frames"] == 24 and render.metrics["psnr"] > 35
    assert render.metrics["psnr"] > render.metrics["psnr_blank_black"] + 10
    # the data set is envbuilder's own D-NeRF scene, written once
    data = prefix / "smoke" / "data"
    transforms = json.loads((data / "transforms_train.json").read_text())
    assert len(transforms["frames"]) == 24 and "camera_angle_x" in transforms
    assert result.data["train"] == 24 and (data / ".envbuilder-data.json").is_file()
    saved = json.loads((prefix / "smoke" / "result.json").read_text())
    assert saved["ok"] is True and [s["status"] for s in saved["steps"]] == ["ok", "ok"]
    assert any("writing the synthetic dnerf data set" in n for n in notes)
    notes.clear()
    assert smoke.run(recipe, prefix, note=notes.append).exit_code == 0
    assert not any("writing the synthetic" in n for n in notes)  # reused


@pytest.mark.parametrize(
    ("mode", "failed", "detail"),
    [
        ("flat-loss", "train", "the loss did not fall"),
        ("crash", "train", "exit 1"),
        ("no-output", "train", "expected output missing: {out}/model/ckpt.txt"),
        ("constant", "render", "constant 24"),
        ("dim", "render", "below 25.00 dB"),
    ],
)
def test_each_check_can_fail(tmp_path, mode, failed, detail):
    recipe, prefix = fake_env(tmp_path)
    result = smoke.run(recipe, prefix, env={"FAKE_MODE": mode})
    outcome = next(s for s in result.steps if s.name == failed)
    assert outcome.status == "failed" and detail in outcome.detail, outcome
    assert result.exit_code == 1
    if failed == "train":
        assert result.steps[1].status == "skipped" and "needs the output of train" in result.steps[1].detail
    assert Path(outcome.log).is_file()


def test_a_step_that_hangs_is_stopped_at_its_timeout(tmp_path):
    recipe, prefix = fake_env(tmp_path, timeout=2)
    result = smoke.run(recipe, prefix, env={"FAKE_MODE": "hang"})
    assert result.steps[0].status == "failed" and "timed out" in result.steps[0].detail
    assert result.steps[0].seconds < 30


def test_missing_gated_asset_blocks_exactly_its_step_and_stubs_run_marked(tmp_path):
    recipe, prefix = fake_env(tmp_path, needs="flame")
    result = smoke.run(recipe, prefix)
    assert statuses(result) == {"train": "ok", "render": "blocked"}
    assert result.steps[1].blocked_by == [
        f"flame (missing at {prefix / 'src/smoke-fixture/data/flame/flame2023_no_jaw.pkl'})"
    ]
    assert result.exit_code == 3
    stubbed = smoke.run(recipe, prefix, stub_assets=True)
    assert statuses(stubbed) == {"train": "ok", "render": "ok"}
    assert stubbed.stub_driven and stubbed.stubs == ["flame"]
    assert stubbed.exit_code == 3  # stand-ins prove the plumbing, not the method
    # the stand-in stays marked: a later run without --stub-assets is still stub-driven
    assert smoke.run(recipe, prefix).stub_driven


def test_a_drifted_smoke_file_says_what_changed(tmp_path):
    recipe, prefix = fake_env(tmp_path)
    (tmp_path / "method" / "base.cfg").write_text("iterations = 7000\n")
    with pytest.raises(smoke.SmokeError, match="expected 'iterations = 30000' once in base.cfg, found it 0 times"):
        smoke.run(recipe, prefix)


def test_smoke_cli_refuses_an_unbuilt_env_and_a_host_without_gpu(tmp_path):
    _, prefix = fake_env(tmp_path)
    result = run_cli("smoke", "smoke-fixture", "--recipes", str(tmp_path), "--prefix", str(prefix))
    assert result.returncode == 2 and "no finished env" in result.stderr
    (prefix / "envbuilder.manifest.json").write_text("{}")
    result = run_cli("smoke", "smoke-fixture", "--recipes", str(tmp_path), "--prefix", str(prefix), "--json")
    if result.returncode == 2:
        assert "no GPU to run the smoke training on" in result.stderr
    else:  # a machine with a GPU runs the fake method for real
        assert json.loads(result.stdout)["exit_code"] == 0


def test_recipes_declare_checks_that_parse(tmp_path):
    """The 4DGaussians smoke run checks loss, frames and PSNR, with a floor above blank frames."""
    recipe = Catalog.default().recipe("4dgaussians")
    assert recipe.smoke is not None and recipe.smoke.data == "dnerf"
    train, render = recipe.smoke.steps
    assert train.loss and dict(train.measure)["it_per_s"]
    assert render.images and render.ground_truth and render.psnr_floor and render.psnr_floor >= 15
    bad = tmp_path / "recipes"
    bad.mkdir()
    (bad / "x.yaml").write_text(
        textwrap.dedent(
            """\
            name: x
            summary: x
            source: {path: .}
            python: ">=3.9"
            torch: {cu130: {torch: ">=2.11"}}
            smoke:
              steps:
                - name: train
                  run: [python, t.py]
                  measure: {fps: 'FPS: [0-9.]+'}
            """
        )
    )
    result = run_cli("show", "x", "--recipes", str(tmp_path))
    assert result.returncode == 2 and "x.yaml:10" in result.stderr and "exactly one group" in result.stderr


def later_data_recipe(tmp_path: Path):
    """The smoke fixture recipe, naming a data generator this envbuilder does not have."""
    fake_env(tmp_path)
    path = tmp_path / "recipes" / "smoke-fixture.yaml"
    path.write_text(path.read_text().replace("data: dnerf", "data: talking-head-v9"))
    return Catalog.default([tmp_path]).recipe("smoke-fixture")


def test_every_shipped_recipe_names_a_generator_that_exists():
    for name in ("4dgaussians", "talkinggaussian", "gaussiantalker", "cap4d", "disco4d"):
        smoke_spec = Catalog.default().recipe(name).smoke
        assert smoke_spec is not None and datasets.not_written_yet(smoke_spec.data) is None, name


def test_the_build_step_skips_a_smoke_run_whose_generator_is_not_written_yet(tmp_path):
    """Even on a GPU machine: the env is built and verified, so the build must not fail on it."""
    from types import SimpleNamespace

    from envbuilder.errors import exit_code_for
    from envbuilder.steps import Deps
    from envbuilder.steps import smoke as smoke_step

    notes: list[str] = []
    ctx = SimpleNamespace(note=notes.append)
    inputs = smoke_step.SmokeRun(later_data_recipe(tmp_path), enabled=True, stub_assets=False, gpus=("NVIDIA H100",))
    out = smoke_step.run(ctx, inputs, Deps("smoke", {}, {}))  # type: ignore[arg-type]
    assert exit_code_for([out["verdict"]]) == 0 and "talking-head-v9" in out["skipped"]
    assert notes and "not possible yet" in notes[0]


def test_results_say_stub_driven_and_a_stub_driven_pass_is_no_pass(tmp_path):
    recipe, prefix = fake_env(tmp_path, needs="flame")
    assert smoke.run(recipe, prefix).to_json()["outcome"] == "blocked"
    stubbed = smoke.run(recipe, prefix, stub_assets=True)
    saved = json.loads((prefix / "smoke" / "result.json").read_text())
    assert saved["outcome"] == "stub-driven pass" and saved["ok"] is False and saved["stub_driven"] is True
    assert stubbed.verdict == "blocked" and stubbed.exit_code == 3  # what build and the manifest record
    failing = smoke.run(recipe, prefix, env={"FAKE_MODE": "flat-loss"})
    assert failing.to_json()["outcome"] == "stub-driven fail" and failing.verdict == "failed"


STAGE = r"""
import json, os, sys
from pathlib import Path
here = Path.cwd()
mode = os.environ.get("FAKE_MODE", "good")
frames = json.loads((here / "transforms_train.json").read_text())["frames"]  # the data set is where it runs
model = Path(sys.argv[1])
print("HOME", os.environ["HOME"])
if mode != "no-output":
    (here / "logs").mkdir(exist_ok=True)
    (here / "logs" / "model.ply").write_text(str(len(frames)))
for i in range(1, 6):
    print(f"[envbuilder] step {i} mse_loss={0.5 / i:.7f} terms=14")
if mode == "rewrite":
    model.write_bytes(model.read_bytes() + b"converted")
"""


def stage_env(tmp_path: Path, home_asset: bool = False):
    """A recipe whose step runs in {data}, writes its output there, and rewrites an asset."""
    _, prefix = fake_env(tmp_path)
    (tmp_path / "method" / "stage.py").write_text(STAGE)
    home = "~/.cache/envbuilder-test/model.pkl" if home_asset else "data/flame/flame2023_no_jaw.pkl"
    text = f"""
name: stage-fixture
summary: a fake stage that runs where its data is
source: {{path: {tmp_path / "method"}}}
python: ">=3.9"
torch:
  cu130: {{torch: ">=2.11"}}
assets:
  - name: flame
    path: {home}
    kind: flame-pkl
    gated: true
    source: https://flame.is.tue.mpg.de/download.php
    register: https://flame.is.tue.mpg.de/register.php
    needed_by: [stage]
smoke:
  data: dnerf
  steps:
    - name: stage
      run: ["{{python}}", "{{src}}/stage.py", "{"{prefix}/smoke/home/.cache/envbuilder-test/model.pkl" if home_asset else "{src}/" + home}"]
      cwd: "{{data}}"
      needs: [flame]
      rewrites: [flame]
      outputs: [logs/model.ply]
      loss: 'mse_loss=([0-9.]+)'
"""
    (tmp_path / "recipes" / "stage-fixture.yaml").write_text(text)
    os.symlink(tmp_path / "method", prefix / "src" / "stage-fixture")
    return Catalog.default([tmp_path]).recipe("stage-fixture"), prefix


def test_a_step_runs_in_its_data_folder_and_a_stale_output_never_passes(tmp_path):
    recipe, prefix = stage_env(tmp_path)
    first = smoke.run(recipe, prefix, stub_assets=True)
    assert first.steps[0].status == "ok", first.to_json()
    assert (prefix / "smoke" / "data" / "logs" / "model.ply").is_file()
    again = smoke.run(recipe, prefix, env={"FAKE_MODE": "no-output"})
    assert again.steps[0].status == "failed" and "expected output missing: logs/model.ply" in again.steps[0].detail


def test_an_asset_a_step_converts_in_place_is_trusted_afterwards(tmp_path):
    """CAP4D's fix-flame rewrites the FLAME pickle; the next run must not call it tampered."""
    from envbuilder import assets

    recipe, prefix = stage_env(tmp_path)
    root = prefix / "src" / "stage-fixture"
    assert smoke.run(recipe, prefix, stub_assets=True, env={"FAKE_MODE": "rewrite"}).steps[0].status == "ok"
    (status,) = assets.check(recipe, root)
    assert status.status == "ok" and status.stub  # the converted stand-in is still known as one
    # an installed file converted in place: its new checksum is recorded with what converted it
    registry = assets.Registry.load(root)
    registry.installed["flame"] = {"sha256": assets.sha(status.path, "sha256"), "trust": "first-use"}
    registry.stubs.pop("flame")
    registry.save()
    assert smoke.run(recipe, prefix, env={"FAKE_MODE": "rewrite"}).steps[0].status == "ok"
    record = assets.Registry.load(root).installed["flame"]
    assert record["sha256"] == assets.sha(status.path, "sha256") and record["rewritten_by"] == "smoke step stage"
    (status,) = assets.check(recipe, root)
    assert status.status == "ok"


def test_home_stand_ins_run_with_the_envs_own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    recipe, prefix = stage_env(tmp_path, home_asset=True)
    result = smoke.run(recipe, prefix, stub_assets=True)
    assert result.steps[0].status == "ok", result.to_json()
    log = Path(result.steps[0].log).read_text()
    assert f"HOME {prefix / 'smoke' / 'home'}" in log
    assert not (tmp_path / "user" / ".cache").exists()  # the user's home is never written


def run_helper(tmp_path, name, args, env_extra):
    script = Path(smoke.__file__).parent / "probes" / name
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60, env=env)


def test_loss_watch_prints_the_terms_between_backward_calls(tmp_path):
    fake = tmp_path / "fake" / "torch"
    (fake / "nn").mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "class Tensor:\n"
        "    def __init__(self, v): self.v = v\n"
        "    def detach(self): return self\n"
        "    def float(self): return self\n"
        "    def mean(self): return self\n"
        "    def __float__(self): return float(self.v)\n"
        "    def backward(self): print('backward', self.v)\n"
    )
    (fake / "nn" / "__init__.py").write_text("")
    (fake / "nn" / "functional.py").write_text("import torch\ndef mse_loss(a, b): return torch.Tensor((a - b) ** 2)\n")
    train = tmp_path / "train.py"
    train.write_text(
        "import sys\nimport torch.nn.functional as F\n"
        "assert sys.argv[1:] == ['--iters', '2'], sys.argv\n"
        "for step in range(2):\n"
        "    loss = F.mse_loss(3, 1) if step == 0 else F.mse_loss(2, 1)\n"
        "    F.mse_loss(0, step)\n"
        "    loss.backward()\n"
    )
    proc = run_helper(
        tmp_path,
        "loss_watch.py",
        ["--watch", "mse_loss", str(train), "--iters", "2"],
        {"PYTHONPATH": str(tmp_path / "fake")},
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[envbuilder]")]
    assert lines == ["[envbuilder] step 1 mse_loss=2.0000000 terms=2", "[envbuilder] step 2 mse_loss=1.0000000 terms=2"]


def test_ffmpeg_on_path_lends_imageio_ffmpegs_binary(tmp_path):
    fake = tmp_path / "fake" / "imageio_ffmpeg"
    fake.mkdir(parents=True)
    binary = tmp_path / "bundled-ffmpeg"
    binary.write_text('#!/bin/sh\necho bundled ffmpeg "$@"\n')
    binary.chmod(0o755)
    (fake / "__init__.py").write_text(f"def get_ffmpeg_exe():\n    return {str(binary)!r}\n")
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python3")
    env = {"PYTHONPATH": str(tmp_path / "fake"), "PATH": str(bare)}
    proc = run_helper(tmp_path, "ffmpeg_on_path.py", ["sh", "-c", "ffmpeg -y out.mp4"], {**env, "PATH": f"{bare}:/bin"})
    if shutil.which("ffmpeg", path="/bin") is None:
        assert proc.returncode == 0, proc.stderr
        assert "bundled ffmpeg -y out.mp4" in proc.stdout
    else:  # a system ffmpeg in /bin is used as it is
        assert proc.returncode == 0
