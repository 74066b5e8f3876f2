"""A tiny D-NeRF-format dynamic scene: coloured spheres that move over time, ray-traced from
cameras on a sphere around them. Written for envbuilder's smoke runs (nothing downloaded).

Layout (what 4DGaussians' Blender/D-NeRF reader expects, research notes §B.1):
  transforms_train.json / transforms_test.json with camera_angle_x and frames[] of
  {file_path: ./train/r_000 (no extension), time: t in [0, 1], transform_matrix: 4x4 camera-to-world
  in Blender/OpenGL convention}, and RGBA PNGs (alpha 0 outside the objects).

Usage: python dnerf.py OUT [--frames 24] [--test 4] [--size 200] [--seed 0]; prints one JSON line.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

SPHERES = [  # centre at t=0, velocity per unit time, radius, colour
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.6), 0.55, (0.9, 0.2, 0.2)),
    ((0.9, 0.0, 0.2), (-0.5, 0.5, 0.0), 0.35, (0.2, 0.8, 0.3)),
    ((-0.8, 0.4, -0.2), (0.4, -0.4, 0.3), 0.3, (0.2, 0.4, 0.95)),
]


def look_at(eye):
    """Camera-to-world matrix (OpenGL: camera looks down -z, y up) looking at the origin."""
    forward = -np.asarray(eye, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, eye
    return c2w


def render(c2w, t, size, fov):
    """Ray-trace the spheres at time t: RGBA float image in [0, 1]."""
    focal = 0.5 * size / math.tan(0.5 * fov)
    j, i = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    dirs = np.stack([(i - size / 2) / focal, -(j - size / 2) / focal, -np.ones_like(i)], -1)
    dirs = dirs @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origin = c2w[:3, 3]
    best = np.full((size, size), np.inf)
    rgba = np.zeros((size, size, 4))
    light = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
    for centre, velocity, radius, colour in SPHERES:
        c = np.asarray(centre) + t * np.asarray(velocity)
        oc = origin - c
        b = dirs @ oc
        disc = b * b - (oc @ oc - radius * radius)
        hit = disc > 0
        dist = -b - np.sqrt(np.where(hit, disc, 0))
        hit &= (dist > 0) & (dist < best)
        points = origin + dist[..., None] * dirs
        normal = (points - c) / radius
        shade = 0.35 + 0.65 * np.clip(normal @ light, 0, 1)
        rgba[hit, :3] = np.asarray(colour) * shade[hit, None]
        rgba[hit, 3] = 1.0
        best = np.where(hit, dist, best)
    return rgba


def write_split(out, split, count, size, fov, rng, time_offset):
    frames = []
    (out / split).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        t = (k + time_offset) / max(count - 1, 1) if split == "train" else rng.uniform(0, 1)
        theta = 2 * math.pi * rng.uniform(0, 1)
        phi = math.radians(rng.uniform(15, 60))
        eye = 4.0 * np.array([math.cos(theta) * math.cos(phi), math.sin(theta) * math.cos(phi), math.sin(phi)])
        c2w = look_at(eye)
        image = render(c2w, t, size, fov)
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), "RGBA").save(out / split / f"r_{k:03d}.png")
        frames.append(
            {"file_path": f"./{split}/r_{k:03d}", "time": round(float(t), 6), "transform_matrix": c2w.tolist()}
        )
    (out / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": fov, "frames": frames}, indent=1))
    return frames


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--test", type=int, default=4)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    fov = math.radians(40)
    train = write_split(args.out, "train", args.frames, args.size, fov, rng, 0)
    test = write_split(args.out, "test", args.test, args.size, fov, rng, 0)
    print(json.dumps({"data": str(args.out), "train": len(train), "test": len(test), "size": args.size}))


if __name__ == "__main__":
    main()
