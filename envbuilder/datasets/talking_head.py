"""A tiny preprocessed talking-head data set: a drawn face (skin, hair, eyes, mouth) over a
torso and a background, as the face-parsing, landmark, action-unit and audio-feature steps of
the ER-NeRF pipeline leave it. Written for envbuilder's smoke runs (nothing downloaded, no
licensed face model: the preprocessing that needs BFM is what this replaces).

Layout (what TalkingGaussian's reader expects, research notes §B.2):
  transforms_{train,val}.json: focal_len, cx, cy and frames[] of {img_id, aud_id,
    transform_matrix: 4x4 camera-to-world, OpenGL axes}; bc.jpg (background);
  gt_imgs/<id>.jpg (frame), torso_imgs/<id>.png (RGBA torso), parsing/<id>.png (face (0,0,255),
    hair (0,0,0), mouth (100,100,100), torso (255,0,0), background white), teeth_mask/<id>.npy
    (bool), ori_imgs/<id>.lms (68 x 2 landmarks, x y per line) and ori_imgs/<id>.jpg;
  aud_ds.npy: DeepSpeech-shaped features [frames, 16, 29];
  au.csv: OpenFace action units, columns with their leading space (" AU25_r").
GaussianTalker's reader also takes cx and cy from the JSON (image size 2*cx x 2*cy), the frames
from ori_imgs/<id>.jpg, and track_params.pt (torch.save of float32 tensors euler [N,3], trans
[N,3] and vertices [N,V,3], indexed by img_id; its initial points are the mean vertices). The
tracks put the head at 1 unit in front of the camera: GaussianTalker turns trans into the camera
translation (t_x, -t_y, -t_z), so trans z is -1. They are written when torch is importable (the
env's Python always has it) and as track_params.npz in any case.
The mouth opening and AU25/AU45 are the same in every frame: TalkingGaussian's warm-up loops
search for frames in a window around them and spin forever on arbitrary values. Frames differ by
a small camera translation (a zero camera spread gives a zero position learning rate).

Usage: python talking_head.py OUT [--train 12] [--val 4] [--size 256] [--seed 0]; prints one JSON line.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

SKIN, HAIR, MOUTH, TEETH, EYE, SHIRT = (
    (224, 178, 150),
    (62, 42, 30),
    (130, 35, 45),
    (240, 240, 235),
    (40, 30, 30),
    (40, 90, 160),
)
AUS = {"AU01": 0.2, "AU04": 0.1, "AU05": 0.1, "AU06": 0.3, "AU07": 0.2, "AU25": 1.0, "AU45": 0.4}


def ellipse(h, w, cx, cy, ax, ay):
    y, x = np.mgrid[0:h, 0:w]
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def on_ellipse(cx, cy, ax, ay, start, stop, n):
    angles = np.linspace(start, stop, n)
    return np.stack([cx + ax * np.cos(angles), cy + ay * np.sin(angles)], axis=1)


def face_parts(s):
    """Masks and 68 landmarks of the drawn face at image size s (scaled from a 256 px layout)."""
    k = s / 256
    face_c, face_a = (128 * k, 118 * k), (58 * k, 74 * k)
    mouth_c, mouth_a, inner_a = (128 * k, 160 * k), (22 * k, 8 * k), (14 * k, 4 * k)
    eyes = [(104 * k, 108 * k), (152 * k, 108 * k)]
    m = {
        "face": ellipse(s, s, *face_c, *face_a),
        "hair": ellipse(s, s, 128 * k, 84 * k, 68 * k, 50 * k),
        "mouth": ellipse(s, s, *mouth_c, *mouth_a),
        "teeth": ellipse(s, s, *mouth_c, *inner_a),
        "eyes": ellipse(s, s, *eyes[0], 9 * k, 5 * k) | ellipse(s, s, *eyes[1], 9 * k, 5 * k),
    }
    torso = np.zeros((s, s), dtype=bool)
    rows = np.arange(s)[:, None]
    cols = np.arange(s)[None, :]
    top = 196 * k
    half = 40 * k + (rows - top) * 1.2
    torso |= (rows >= top) & (np.abs(cols - 128 * k) <= half)
    torso |= (rows >= 180 * k) & (np.abs(cols - 128 * k) <= 18 * k)  # neck
    m["hair"] &= ~m["face"]
    m["torso"] = torso & ~m["face"]
    lms = np.concatenate(
        [
            on_ellipse(*face_c, *face_a, math.pi, 0, 17),  # jaw: left to right along the lower half
            on_ellipse(104 * k, 96 * k, 14 * k, 4 * k, math.pi, 2 * math.pi, 5),  # brows
            on_ellipse(152 * k, 96 * k, 14 * k, 4 * k, math.pi, 2 * math.pi, 5),
            np.stack([np.full(4, 128 * k), np.linspace(112 * k, 136 * k, 4)], axis=1),  # nose bridge
            np.stack([np.linspace(118 * k, 138 * k, 5), np.full(5, 140 * k)], axis=1),  # nostrils
            on_ellipse(*eyes[0], 9 * k, 5 * k, 0, 2 * math.pi, 7)[:6],
            on_ellipse(*eyes[1], 9 * k, 5 * k, 0, 2 * math.pi, 7)[:6],
            on_ellipse(*mouth_c, *mouth_a, math.pi, 3 * math.pi, 13)[:12],  # outer lips
            on_ellipse(*mouth_c, *inner_a, math.pi, 3 * math.pi, 9)[:8],  # inner lips
        ]
    )
    assert lms.shape == (68, 2)
    return m, lms


def draw(s, masks, rng):
    yy = np.linspace(0.0, 1.0, s)[:, None, None]
    background = (np.array([200, 205, 215]) * (1 - 0.25 * yy) + rng.normal(0, 2, (s, s, 3))).clip(0, 255)
    background = np.broadcast_to(background, (s, s, 3)).astype(np.uint8)
    frame = background.copy()
    for name, colour in (
        ("torso", SHIRT),
        ("hair", HAIR),
        ("face", SKIN),
        ("eyes", EYE),
        ("mouth", MOUTH),
        ("teeth", TEETH),
    ):
        frame[masks[name]] = colour
    # soft shading on the face so the image has gradients to fit, not flat regions only
    y, x = np.mgrid[0:s, 0:s]
    shade = (1.0 - 0.25 * ((x - s / 2) ** 2 + (y - s / 2) ** 2) / (s / 2) ** 2)[..., None]
    face = masks["face"] & ~masks["mouth"] & ~masks["eyes"]
    frame[face] = (frame[face] * shade[face]).clip(0, 255).astype(np.uint8)
    torso = np.zeros((s, s, 4), dtype=np.uint8)
    torso[masks["torso"], :3] = SHIRT
    torso[masks["torso"], 3] = 255
    parsing = np.full((s, s, 3), 255, dtype=np.uint8)
    parsing[masks["torso"]] = (255, 0, 0)
    parsing[masks["hair"]] = (0, 0, 0)
    parsing[masks["face"]] = (0, 0, 255)
    parsing[masks["mouth"]] = (100, 100, 100)
    return background, frame, torso, parsing


def head_tracks(n, focal, s, rng):
    """Face-tracker output for a still head: points on the front of an ellipsoid that projects onto
    the drawn face (centre 10 px above the image centre, semi-axes 58 x 74 px at 256 px)."""
    k = s / 256
    v = 3000
    theta = rng.uniform(-0.5 * math.pi, 0.5 * math.pi, v)  # the front half, facing the camera
    phi = np.arccos(rng.uniform(-1.0, 1.0, v))
    axes = np.array([58 * k / focal, 74 * k / focal, 0.06])
    unit = np.stack([np.sin(phi) * np.sin(theta), np.cos(phi), np.sin(phi) * np.cos(theta)], axis=1)
    head = unit * axes + [0.0, 10 * k / focal, 0.0]
    trans = np.tile([0.0, 0.0, -1.0], (n, 1)) + np.stack([0.003 * np.sin(np.arange(n)), np.zeros(n), np.zeros(n)], 1)
    return {
        "euler": np.zeros((n, 3), dtype=np.float32),
        "trans": trans.astype(np.float32),
        "vertices": np.broadcast_to(head, (n, v, 3)).astype(np.float32),
    }


def write(out, n_train, n_val, s, seed):
    rng = np.random.default_rng(seed)
    masks, lms = face_parts(s)
    background, frame, torso, parsing = draw(s, masks, rng)
    for d in ("gt_imgs", "torso_imgs", "parsing", "teeth_mask", "ori_imgs"):
        (out / d).mkdir(parents=True, exist_ok=True)
    Image.fromarray(background).save(out / "bc.jpg", quality=95)
    n = n_train + n_val
    for i in range(n):
        Image.fromarray(frame).save(out / "gt_imgs" / f"{i}.jpg", quality=95)
        Image.fromarray(frame).save(out / "ori_imgs" / f"{i}.jpg", quality=95)
        Image.fromarray(torso).save(out / "torso_imgs" / f"{i}.png")
        Image.fromarray(parsing).save(out / "parsing" / f"{i}.png")
        np.save(out / "teeth_mask" / f"{i}.npy", masks["teeth"])
        np.savetxt(out / "ori_imgs" / f"{i}.lms", lms, fmt="%.2f")
    np.save(out / "aud_ds.npy", rng.normal(0.0, 0.1, (n, 16, 29)).astype(np.float32))
    header = "frame," + ",".join(f" {au}_r" for au in AUS)
    rows = [f"{i}," + ",".join(str(v) for v in AUS.values()) for i in range(n)]
    (out / "au.csv").write_text("\n".join([header, *rows]) + "\n")
    focal = 600.0 * s / 256  # the random initial points (a +-0.1 cube at 1 unit) cover the face
    tracks = head_tracks(n, focal, s, rng)
    np.savez(out / "track_params.npz", **tracks)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.save({k: torch.from_numpy(v) for k, v in tracks.items()}, out / "track_params.pt")
    for split, ids in (("train", range(n_train)), ("val", range(n_train, n))):
        frames = []
        for i in ids:
            c2w = np.eye(4)
            c2w[:3, 3] = [0.01 * math.sin(i), 0.01 * math.cos(1.7 * i), 1.0]
            frames.append({"img_id": i, "aud_id": i, "transform_matrix": c2w.round(6).tolist()})
        doc = {"focal_len": focal, "cx": s / 2, "cy": s / 2, "frames": frames}
        (out / f"transforms_{split}.json").write_text(json.dumps(doc, indent=1))
    return n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=12)
    parser.add_argument("--val", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = write(args.out, args.train, args.val, args.size, args.seed)
    print(json.dumps({"data": str(args.out), "train": args.train, "val": args.val, "frames": n, "size": args.size}))


if __name__ == "__main__":
    main()
