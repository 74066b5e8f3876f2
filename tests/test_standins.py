"""Stand-ins for licensed models: written by stubgen.py with this Python (numpy, scipy; no chumpy or
torch here), checked against what the methods' loaders read (FLAME_PyTorch/CAP4D flowface, smplx's
body_models.py as vendored by Disco4D, SMPLer-X's human_models.py), and never taken for the real
file: not by `assets`, not by `assets install`, not after the registry is gone."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from envbuilder import assets
from envbuilder.assets import formats, validators
from envbuilder.errors import EnvbuilderError
from envbuilder.recipe.catalog import Catalog

from helpers import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "data"
RECIPE = Catalog.default([FIXTURES]).recipe("fixture-standins")
ASSETS = {a.name: a for a in RECIPE.assets}
STUBGEN = Path(assets.__file__).with_name("stubgen.py")
COUNTS = {"flame-pkl": (5023, 9976), "smpl-model": (6890, 13776), "smplx-model": (10475, 20908)}


def stubgen(kind: str, path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(STUBGEN)],
        input=json.dumps([{"kind": kind, "path": str(path)}]),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_model(path: Path) -> dict:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=True) as data:
            return {k: data[k] for k in data.files}
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")  # written just above by stubgen (plain numpy here)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("stubs")
    out = {}
    for kind, name in (("flame-pkl", "flame.pkl"), ("smpl-model", "smpl.pkl"), ("smplx-model", "smplx.npz")):
        facts = stubgen(kind, root / name)
        assert facts["written"] == [str(root / name)]
        out[kind] = load_model(root / name)
    return out


@pytest.mark.parametrize("kind", sorted(COUNTS))
def test_body_model_stand_ins_are_surfaces_with_the_real_counts(models, kind):
    """Code that binds Gaussians to faces (Disco4D: one per SMPL-X face, scaled by its edge lengths)
    needs triangles with area and one orientation, every vertex used, none repeated."""
    model = models[kind]
    v, f = np.asarray(model["v_template"], dtype=float), np.asarray(model["f"]).astype(np.int64)
    assert (v.shape[0], f.shape[0]) == COUNTS[kind] and v.shape[1] == f.shape[1] == 3
    assert np.array_equal(np.unique(f), np.arange(len(v)))  # trimesh keeps referenced vertices only
    assert len(np.unique(v.round(9), axis=0)) == len(v)  # and merges repeated ones
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert area.min() > 1e-7
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # consistently oriented
    volume = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    assert volume > 0  # normals point outwards
    joints = np.asarray(model["J_regressor"]) @ v
    assert np.allclose(np.asarray(model["J_regressor"]).sum(1), 1) and np.allclose(
        np.asarray(model["weights"]).sum(1), 1
    )
    assert (joints.min(0) >= v.min(0) - 1e-9).all() and (joints.max(0) <= v.max(0) + 1e-9).all()
    parents = np.asarray(model["kintree_table"])[0]
    assert all(parents[j] < j for j in range(1, len(parents)))  # smplx's lbs walks parents before children
    assert model[validators.STAND_IN_KEY]


def test_smplx_stand_in_holds_what_disco4d_reads(models):
    """Disco4D builds SMPL-X layers with use_face_contour=True, use_pca=False (human_models.py:17-21)."""
    model = models["smplx-model"]
    n_faces = len(model["f"])
    assert model["dynamic_lmk_faces_idx"].shape == (79, 17) and model["dynamic_lmk_faces_idx"].max() < n_faces
    assert model["dynamic_lmk_bary_coords"].shape == (79, 17, 3)
    assert np.allclose(model["dynamic_lmk_bary_coords"].sum(-1), 1)
    assert model["lmk_faces_idx"].shape == (51,) and model["lmk_faces_idx"].max() < n_faces
    assert model["hands_componentsl"].shape == (45, 45) and model["hands_meanl"].shape == (45,)
    assert model["shapedirs"].shape == (10475, 3, 400)  # 300 shape + 100 expression components
    assert model["posedirs"].shape == (10475, 3, 486)


def test_stand_ins_pass_the_validators_and_stay_marked_without_the_registry(tmp_path):
    root = tmp_path / "src"
    written, skipped = assets.stub(RECIPE, root, Path(sys.executable))
    assert sorted(written) == ["flame", "flame-ids", "j14", "mano-ids", "smpl", "smplx"]
    assert any(s.startswith("home-model: it belongs in your home") for s in skipped)
    assert not (Path.home() / ".cache" / "envbuilder-test").exists()  # never into the real home
    statuses = {s.asset.name: s for s in assets.check(RECIPE, root)}
    for name in written:
        assert statuses[name].status == "ok" and statuses[name].stub, (name, statuses[name].detail)
    (root / assets.REGISTRY).unlink()  # the in-file marker alone still says so
    statuses = {s.asset.name: s for s in assets.check(RECIPE, root)}
    assert all(statuses[name].stub for name in written), {n: statuses[n].detail for n in written}
    assert "stand-in" in statuses["j14"].detail and "stand-in" in statuses["flame-ids"].detail


def test_a_stand_in_is_missing_to_assets_and_cannot_be_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    root, home = tmp_path / "src", tmp_path / "env-home"
    assets.stub(RECIPE, root, Path(sys.executable), home)
    statuses = assets.check(RECIPE, root, home)
    assert all(s.status == "ok" and s.stub for s in statuses)  # nothing missing: only stand-ins
    assert assets.verdict(statuses) == "blocked" and assets.build_verdict(statuses) == "blocked"
    assert assets.stand_ins(statuses)["train"] == ["flame", "home-model"]
    args = ["--recipes", str(FIXTURES), "--root", str(root), "--json"]
    assert run_cli("assets", "fixture-standins", *args).returncode == 3
    copy = tmp_path / "flame2023_no_jaw.pkl"
    copy.write_bytes((root / ASSETS["flame"].path).read_bytes())
    other = tmp_path / "other"
    with pytest.raises(EnvbuilderError, match="none of fixture-standins's assets") as info:
        assets.install(RECIPE, other, [copy])
    assert "is an envbuilder stand-in, not the real file" in info.value.hint
    assert not (other / ASSETS["flame"].path).exists()


def test_home_stand_ins_go_to_the_given_home_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    root, home = tmp_path / "src", tmp_path / "env-home"
    written, _ = assets.stub(RECIPE, root, Path(sys.executable), home)
    assert "home-model" in written
    assert (home / ".cache/envbuilder-test/flame2023_no_jaw.pkl").is_file()
    assert not (tmp_path / "user" / ".cache").exists()
    status = next(s for s in assets.check(RECIPE, root, home) if s.asset.name == "home-model")
    assert status.stub and home in status.path.parents
    # a real file in the user's home wins over the stand-in
    real = tmp_path / "user/.cache/envbuilder-test/flame2023_no_jaw.pkl"
    real.parent.mkdir(parents=True)
    data = load_model(status.path)
    data.pop(validators.STAND_IN_KEY)
    real.write_bytes(pickle.dumps(data, protocol=2))
    status = next(s for s in assets.check(RECIPE, root, home) if s.asset.name == "home-model")
    assert status.path == real and not status.stub


@pytest.mark.parametrize(
    ("kind", "content", "detail"),
    [
        ("smplx-j14-regressor", pickle.dumps(np.zeros((14, 10475))), None),
        ("smplx-j14-regressor", pickle.dumps(np.zeros((24, 10475))), "shape 24x10475, expected 14x10475"),
        ("smplx-j14-regressor", pickle.dumps({"a": 1}), "not an SMPL-X to LSP-14 joint regressor"),
        ("smplx-mano-vertex-ids", pickle.dumps({"left_hand": np.arange(778), "right_hand": np.arange(778)}), None),
        ("smplx-mano-vertex-ids", pickle.dumps({"left_hand": np.arange(778)}), "needs left_hand and right_hand"),
        ("smplx-mano-vertex-ids", pickle.dumps({"left_hand": np.arange(7), "right_hand": np.arange(778)}), "shape 7"),
        ("smplx-flame-vertex-ids", None, None),
        ("smplx-flame-vertex-ids", b"npy:10", "shape 10, expected 5023"),
    ],
)
def test_smplx_index_files_are_checked(tmp_path, kind, content, detail):
    asset = next(a for a in RECIPE.assets if a.kind == kind)
    path = tmp_path / Path(asset.path).name
    if content is None or content.startswith(b"npy:"):
        buffer = io.BytesIO()
        np.save(buffer, np.arange(int(content[4:]) if content else 5023))
        content = buffer.getvalue()
    path.write_bytes(content)
    finding = validators.validate(path, asset)
    if detail is None:
        assert finding.status == "ok" and not finding.facts.get("stand_in"), finding.detail
    else:
        assert finding.status == "wrong-structure" and detail in finding.detail, finding.detail


def state_dict_zip(metadata: dict | None) -> bytes:
    """A torch.save zip whose data.pkl is an OrderedDict with torch's _metadata attribute (pickled
    with no tensors: the marker check reads the structure only)."""
    state = collections.OrderedDict(weight=1.0)
    if metadata is not None:
        state._metadata = collections.OrderedDict(metadata)  # type: ignore[attr-defined]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(state, protocol=2))
        zf.writestr("archive/version", "3\n")
    return out.getvalue()


def test_a_checkpoint_stand_in_is_found_by_its_metadata_marker(tmp_path):
    asset = Catalog.default().recipe("cap4d").assets[1]
    assert asset.name == "mmdm-weights" and asset.stand_in == "cap4d-mmdm"
    marked = tmp_path / "marked.ckpt"
    marked.write_bytes(state_dict_zip({"": {"version": 1}, validators.STAND_IN_KEY: {"note": "x"}}))
    plain = tmp_path / "plain.ckpt"
    plain.write_bytes(state_dict_zip({"": {"version": 1}}))
    assert validators.validate(marked, asset).facts.get("stand_in") is True
    assert not validators.validate(plain, asset).facts.get("stand_in")
    assert formats.torch_structure(plain) is not None


def test_the_stand_in_writers_name_what_the_recipes_use():
    from envbuilder.recipe.model import STAND_IN_WRITERS

    spec = Path(assets.__file__).with_name("standin_weights.py").read_text()
    for writer in STAND_IN_WRITERS:
        assert f'"{writer}"' in spec
    catalog = Catalog.default()
    used = {a.stand_in for name in catalog.recipe_files() for a in catalog.recipe(name).assets if a.stand_in}
    assert used == set(STAND_IN_WRITERS)  # every writer is used, and no recipe names another


def test_an_unknown_stand_in_writer_is_refused(tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    text = (FIXTURES / "recipes" / "fixture-standins.yaml").read_text()
    text = text.replace("source: {path: ../../exts}", f"source: {{path: {FIXTURES.parent / 'exts'}}}")
    text = text.replace(
        "    needed_by: [train]\n  - name: smpl\n", "    needed_by: [train]\n    stand_in: sdxl\n  - name: smpl\n", 1
    )
    (recipes / "fixture-standins.yaml").write_text(text)
    result = run_cli("show", "fixture-standins", "--recipes", str(tmp_path))
    assert result.returncode == 2 and "unknown stand-in writer 'sdxl'" in result.stderr


@pytest.fixture(scope="module")
def method_python(canary_env: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A Python with torch, as a method's env has: the session's canary env, with torchvision
    (built for that torch), and the Pillow and numpy it imports, installed beside it in a folder
    of its own, so the env stays as built."""
    python = canary_env / "venv" / "bin" / "python"
    torch_version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__.split('+')[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the torchvision release built for each torch (pytorch/vision README, "Installation")
    vision = {"2.14.1": "0.29.1", "2.13.0": "0.28.0", "2.9.1": "0.24.1"}.get(torch_version)
    extra = tmp_path_factory.mktemp("torchvision")
    env = {**os.environ, "PYTHONPATH": str(extra)}
    if vision:
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(extra),
                f"torchvision=={vision}",
                "pillow",
                "numpy",
            ],
            capture_output=True,
            timeout=600,
        )
    return python, env


LOAD = """import json, sys, torch
state = torch.load(sys.argv[1], weights_only=True)
print(json.dumps({"marked": "envbuilder_stand_in" in state._metadata, "shapes": [list(v.shape) for v in state.values()]}))
"""


@pytest.mark.build
@pytest.mark.parametrize("writer", ["lpips-vgg", "torchvision-vgg16", "torchvision-alexnet"])
def test_the_weight_writers_save_a_marked_state_dict(tmp_path, writer, method_python):
    python, env = method_python
    if writer.startswith("torchvision-"):
        found = subprocess.run([str(python), "-c", "import torchvision"], env=env, capture_output=True)
        if found.returncode != 0:
            why = (found.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"no torchvision for the canary env's torch could be installed beside it: {why}")
    dest = tmp_path / "hub" / "w.pth"
    script = Path(assets.__file__).with_name("standin_weights.py")
    proc = subprocess.run(
        [str(python), str(script), writer, str(dest)], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr
    loaded = subprocess.run(
        [str(python), "-c", LOAD, str(dest)], capture_output=True, text=True, timeout=600, env=env, check=True
    )
    facts = json.loads(loaded.stdout)
    assert facts["marked"]
    expected = {
        "lpips-vgg": [[1, c, 1, 1] for c in (64, 128, 256, 512, 512)],
        "torchvision-alexnet": [[64, 3, 11, 11], [64]],  # the first conv, as the ImageNet file has it
        "torchvision-vgg16": [[64, 3, 3, 3], [64]],
    }[writer]
    assert facts["shapes"][: len(expected)] == expected
    catalog = Catalog.default()
    asset = next(a for name in catalog.recipe_files() for a in catalog.recipe(name).assets if a.stand_in == writer)
    assert validators.validate(dest, asset).facts.get("stand_in") is True
