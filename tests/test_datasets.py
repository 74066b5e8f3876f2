"""The synthetic data sets hold what the methods' readers take from them (the reader contracts are
in the generators' docstrings, from research notes §B). The generators are scripts run with the
env's Python; here with this one, which has numpy and Pillow."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

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
