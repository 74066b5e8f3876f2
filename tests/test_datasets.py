"""The synthetic data sets hold what the methods' readers take from them (the reader contracts are
in the generators' docstrings, from research notes §B). The generators are scripts run with the
env's Python; here with this one, which has numpy and Pillow."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from envbuilder import datasets


def image(path):
    with Image.open(path) as im:
        return im.size, im.mode, np.array(im.convert("RGB"))


@pytest.fixture(scope="module")
def talking_head(tmp_path_factory):
    out = tmp_path_factory.mktemp("th") / "data"
    script = datasets.script("talking-head")
    assert script is not None
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120, check=True
    )
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    return out, facts


def test_talking_head_frames_and_per_frame_files(talking_head):
    out, facts = talking_head
    splits = {s: json.loads((out / f"transforms_{s}.json").read_text()) for s in ("train", "val")}
    ids = {s: [f["img_id"] for f in doc["frames"]] for s, doc in splits.items()}
    assert len(ids["train"]) == facts["train"] and len(ids["val"]) == facts["val"] > 0
    assert sorted(ids["train"] + ids["val"]) == list(range(facts["frames"]))  # au.csv rows are indexed by img_id
    size = facts["size"]
    for doc in splits.values():
        assert doc["focal_len"] > 0 and doc["cx"] * 2 == size == doc["cy"] * 2
        for frame in doc["frames"]:
            c2w = np.array(frame["transform_matrix"])
            assert c2w.shape == (4, 4) and np.allclose(c2w[3], [0, 0, 0, 1])
    centres = np.array([f["transform_matrix"] for f in splits["train"]["frames"]])[:, :3, 3]
    assert np.ptp(centres, axis=0).max() > 0  # a zero camera spread gives a zero position learning rate
    for i in range(facts["frames"]):
        assert image(out / "gt_imgs" / f"{i}.jpg")[0] == (size, size)
        assert image(out / "torso_imgs" / f"{i}.png")[1] == "RGBA"
        assert np.load(out / "teeth_mask" / f"{i}.npy").dtype == bool
        assert np.loadtxt(out / "ori_imgs" / f"{i}.lms").shape == (68, 2)
    assert image(out / "bc.jpg")[0] == (size, size)


def test_talking_head_masks_landmarks_and_units_fit_the_reader(talking_head):
    out, facts = talking_head
    parsing = image(out / "parsing" / "0.png")[2]
    teeth = np.load(out / "teeth_mask" / "0.npy")
    face = (parsing == (0, 0, 255)).all(-1)
    hair = (parsing == (0, 0, 0)).all(-1)
    mouth = (parsing == (100, 100, 100)).all(-1)
    assert face.sum() > 1000 and hair.sum() > 500 and (mouth | teeth).sum() >= 20
    assert (teeth & mouth).sum() == teeth.sum() > 0  # the teeth sit inside the mouth

    lms = np.loadtxt(out / "ori_imgs" / "0.lms")  # x (column), y (row) per line
    lips = lms[48:60]
    assert np.ptp(lips[:, 0]) >= 32  # AlexNet LPIPS runs on the square lips crop
    half = max(np.ptp(lips[:, 0]), np.ptp(lips[:, 1])) / 2
    assert (lips.mean(0) - half >= 0).all() and (lips.mean(0) + half <= facts["size"]).all()
    openings = {np.ptp(np.loadtxt(out / "ori_imgs" / f"{i}.lms")[60:68, 1]) for i in range(facts["frames"])}
    assert len(openings) == 1 and openings.pop() > 0  # one mouth opening: the warm-up selection loops end

    with (out / "au.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == facts["frames"]
    for column in (" AU01_r", " AU04_r", " AU05_r", " AU06_r", " AU07_r", " AU25_r", " AU45_r"):
        assert column in rows[0]
    assert len({r[" AU25_r"] for r in rows}) == len({r[" AU45_r"] for r in rows}) == 1

    audio = np.load(out / "aud_ds.npy")
    assert audio.shape == (facts["frames"], 16, 29) and audio.dtype == np.float32 and np.isfinite(audio).all()


def test_talking_head_tracks_put_the_head_on_the_drawn_face(tmp_path):
    """track_params.pt is written through the env's torch; a stand-in torch records what it gets."""
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import pickle\n"
        "def from_numpy(a):\n    return a\n"
        "def save(obj, path):\n    with open(path, 'wb') as f:\n        pickle.dump(obj, f)\n"
    )
    out = tmp_path / "data"
    script = datasets.script("talking-head")
    env = {"PYTHONPATH": str(tmp_path / "fake")}
    subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, timeout=120, check=True)
    import pickle

    with (out / "track_params.pt").open("rb") as f:
        tracks = pickle.load(f)  # written just above by the stand-in torch
    n = len(json.loads((out / "transforms_train.json").read_text())["frames"]) + 4
    assert tracks["euler"].shape == (n, 3) and tracks["trans"].shape == (n, 3)
    assert tracks["vertices"].shape[0] == n and tracks["vertices"].shape[2] == 3
    assert {v.dtype for v in tracks.values()} == {np.dtype(np.float32)}  # euler2rot concatenates with float32 ones
    assert set(np.load(out / "track_params.npz").files) == set(tracks)

    # GaussianTalker's camera for euler 0: world-to-camera rotation diag(1, -1, -1), translation
    # (t_x, -t_y, -t_z); its first points are the mean vertices. They must land on the drawn head.
    doc = json.loads((out / "transforms_train.json").read_text())
    t = tracks["trans"][0]
    cam = tracks["vertices"].mean(0) * [1, -1, -1] + [t[0], -t[1], -t[2]]
    assert (cam[:, 2] > 0).all()
    u = doc["focal_len"] * cam[:, 0] / cam[:, 2] + doc["cx"]
    v = doc["focal_len"] * cam[:, 1] / cam[:, 2] + doc["cy"]
    parsing = image(out / "parsing" / "0.png")[2]
    head = (parsing == (0, 0, 255)).all(-1) | (parsing == (100, 100, 100)).all(-1)
    inside = head[v.round().astype(int).clip(0, 255), u.round().astype(int).clip(0, 255)]
    assert inside.mean() > 0.9


# --- Disco4D's 4D-stage input ------------------------------------------------------------------------
# The reader contracts, from Disco4D 8355f14 (cited in envbuilder/datasets/disco4d_video.py): the
# frames are RGBA (no rembg), the posed meshes keep the model's vertex order and faces, the .npz
# holds the SMPL-X parameters load_from_smplx_path reads, and the two Gaussian files hold one
# Gaussian per face and the clothing kept by the category filter.


def read_ply(path):
    """A binary little-endian PLY of float vertex properties (what plyfile reads there)."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[1] == "format binary_little_endian 1.0"
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    names = [line.split()[-1] for line in header if line.startswith("property float")]
    values = np.frombuffer(data[end:], dtype="<f4").reshape(count, len(names))
    return {n: values[:, i] for i, n in enumerate(names)}


def read_obj(path):
    v, f = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "v":
            v.append([float(x) for x in parts[1:4]])
        elif parts and parts[0] == "f":
            f.append([int(x) - 1 for x in parts[1:4]])
    return np.array(v), np.array(f)


def stage_camera(points, size):
    """Disco4D's fixed camera: orbit_camera(0, 0, 1.5) (utils/cam_utils.py:60-78, OpenGL, at +z)
    made a MiniCam (gs_renderer_4d_canonical.py:31-58 negates rows 1-2 of the view rotation and the
    translation), fovy 49.1 (configs/4d.yaml); x right, y down, z forward, as the rasteriser takes it."""
    c2w = np.eye(4)
    c2w[2, 3] = 1.5
    w2c = np.linalg.inv(c2w)
    w2c[1:3, :3] *= -1
    w2c[:3, 3] *= -1
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    focal = size / (2 * np.tan(np.radians(49.1) / 2))
    return np.stack([focal * cam[:, 0] / cam[:, 2] + size / 2, focal * cam[:, 1] / cam[:, 2] + size / 2, cam[:, 2]], 1)


@pytest.fixture(scope="module")
def disco4d(tmp_path_factory):
    root = tmp_path_factory.mktemp("d4")
    model_path = root / "SMPLX_NEUTRAL.npz"
    stubgen = Path(datasets.__file__).parent.parent / "assets" / "stubgen.py"
    request = json.dumps([{"kind": "smplx-model", "path": str(model_path)}])
    subprocess.run(
        [sys.executable, str(stubgen)], input=request, capture_output=True, text=True, timeout=300, check=True
    )
    out = root / "data"
    script = datasets.script("disco4d-video")
    assert script is not None and datasets.reads_assets("disco4d-video")
    proc = subprocess.run(
        [sys.executable, str(script), str(out), f"--asset=smplx-neutral={model_path}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    with np.load(model_path) as data:
        model = {k: data[k] for k in ("v_template", "f", "J_regressor", "hands_meanl", "hands_meanr")}
    return out, json.loads(proc.stdout.strip().splitlines()[-1]), model, model_path


def test_disco4d_frames_meshes_and_parameters_fit_the_reader(disco4d):
    out, facts, model, model_path = disco4d
    assert facts["inputs"] == [str(model_path)]  # so the smoke run rewrites it when the model changes
    case = out / "data" / facts["dir"] / facts["case"]
    assert [p.name for p in (out / "data" / facts["dir"]).iterdir()] == [facts["case"]]  # os.listdir -> cases
    for i in range(14):
        size, mode, _ = image(case / "img" / f"{i:03d}_rgba.png")
        assert mode == "RGBA" and size == (facts["size"], facts["size"])  # 4 channels: rembg never runs
        v, f = read_obj(case / "meshes" / f"{i}_norm_smplx.obj")
        assert v.shape == model["v_template"].shape and np.array_equal(f, model["f"].astype(np.int64))
    with np.load(out / "logs" / "output" / facts["img_dir"] / f"{facts['case']}_square_rgba_smplx.npz") as npz:
        p = {k: npz[k] for k in npz.files}
    shapes = {k: v.shape for k, v in p.items()}
    assert shapes == {
        "global_orient": (1, 3), "body_pose": (1, 63), "left_hand_pose": (1, 45), "right_hand_pose": (1, 45),
        "jaw_pose": (1, 3), "betas": (1, 10), "expression": (1, 10), "translation": (3,), "scale": (),
    }  # fmt: skip
    assert {v.dtype for v in p.values()} == {np.dtype(np.float32)}  # the layer's buffers are float32
    assert np.allclose(p["left_hand_pose"], -model["hands_meanl"]) and np.allclose(p["global_orient"], [[np.pi, 0, 0]])
    # the stage's canonical mesh: LBS with only the root turned half about x, then y and z negated
    # (SET_NEG), minus translation, times scale; frame 0 (no turn) must be that mesh
    v = model["v_template"]
    j0 = model["J_regressor"][0] @ v
    turned = (v - j0) * [1, -1, -1] + j0
    canonical = (turned * [1, -1, -1] - p["translation"]) * p["scale"]
    frame0, _ = read_obj(case / "meshes" / "0_norm_smplx.obj")
    assert np.abs(frame0 - canonical).max() < 1e-5
    assert np.ptp(canonical[:, 1]) == pytest.approx(0.9, abs=1e-4)


def test_disco4d_gaussians_fit_the_reader_and_the_camera_sees_the_figure(disco4d):
    out, facts, model, _ = disco4d
    logs = out / "logs" / "output" / facts["img_dir"]
    body = read_ply(logs / f"{facts['case']}_square_rgba_clothed_smplx.ply")
    assert len(body["f_dc_0"]) == len(model["f"])  # one per face, read into per-face arrays
    assert not any(n.startswith("f_rest_") for n in body)  # sh_degree 0: 3 * 1 - 3 extra features
    assert all(f"obj_dc_{k}" in body for k in range(16))
    cloth = read_ply(logs / f"{facts['case']}_square_rgba_seg_model_dens4.ply")
    for name in ("x", "y", "z", "opacity", "f_dc_0", "f_dc_2", "scale_0", "scale_2", "rot_0", "rot_3", "obj_dc_15"):
        assert name in cloth
    category = np.argmax(np.stack([cloth[f"obj_dc_{k}"] for k in range(16)], 1), 1)
    kept = np.isin(category, np.arange(2, 11))
    assert kept.sum() == facts["clothing"] > 1000 and (~kept).sum() > 0  # the filter has work to do
    # find_nearest_kdtree ties each clothing Gaussian to the nearest face centre: its own face
    with np.load(out / "logs" / "output" / facts["img_dir"] / f"{facts['case']}_square_rgba_smplx.npz") as npz:
        translation, scale = npz["translation"], npz["scale"]
    v = model["v_template"]
    j0 = model["J_regressor"][0] @ v
    canonical = (((v - j0) * [1, -1, -1] + j0) * [1, -1, -1] - translation) * scale
    centres = canonical[model["f"].astype(np.int64)].mean(1)
    xyz = np.stack([cloth["x"], cloth["y"], cloth["z"]], 1)[kept][::97]
    nearest = np.linalg.norm(xyz[:, None] - centres[None], axis=2).min(1)
    assert nearest.max() < 0.01
    # frame 0 through the stage's camera: the figure's vertices land on the drawn figure
    uvz = stage_camera(canonical, facts["size"])
    alpha = np.asarray(Image.open(out / "data" / facts["dir"] / facts["case"] / "img" / "000_rgba.png"))[..., 3]
    u, w = uvz[:, 0].round().astype(int), uvz[:, 1].round().astype(int)
    assert (uvz[:, 2] > 0).all() and (u >= 0).all() and (u < facts["size"]).all() and (w >= 0).all()
    assert (alpha[w.clip(0, facts["size"] - 1), u.clip(0, facts["size"] - 1)] > 0).mean() > 0.95


def test_disco4d_ground_truth_is_the_frame_on_white_under_the_render_names(disco4d):
    out, facts, _, _ = disco4d
    for i in range(14):
        rgba = (
            np.asarray(Image.open(out / "data" / facts["dir"] / facts["case"] / "img" / f"{i:03d}_rgba.png"), float)
            / 255
        )
        white = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        gt = np.asarray(Image.open(out / "gt" / f"{i}_0.png"), float) / 255  # main_4d_smplx.py:632 names
        assert np.abs(gt - white).max() <= 1 / 255 + 1e-9
    frames = [np.asarray(Image.open(out / "gt" / f"{i}_0.png")) for i in (0, 3)]
    assert not np.array_equal(*frames)  # the clothing slides: the 4D stage has a motion to learn


def test_the_disco4d_recipe_runs_the_stage_on_this_layout():
    from envbuilder.recipe.catalog import Catalog

    recipe = Catalog.default().recipe("disco4d")
    assert recipe.smoke is not None and recipe.smoke.data == "disco4d-video"
    (step,) = recipe.smoke.steps
    run = list(step.run)
    spec = (Path(datasets.__file__).with_name("disco4d_video.py")).read_text()
    for flag, name in (("--dir", "envbuilder_video"), ("--img_dir", "envbuilder_img")):
        assert run[run.index(flag) + 1] == name and f'"{name}"' in spec
    assert step.cwd == "{data}" and step.ground_truth == "gt" and "subject0" in (step.images or "")
    assert "lambda_zero123=0" in run  # no zero123-xl download
