"""What Disco4D's image stages would leave for its video-to-4D stage, built on the SMPL-X model
of the source tree (the licensed one, or envbuilder's stand-in): a figure whose torso wears a
"shirt" of Gaussians, seen by the stage's fixed front camera in 14 frames while it turns a little
and the shirt slides over the body. The 4D stage learns exactly that slide (its deformation field
moves the clothing Gaussians only), so its photometric loss has something to fall to, and its front
renders can be compared with these frames. Written for envbuilder's smoke runs (nothing downloaded).

Layout, relative to the directory the stage runs in (Disco4D 8355f14; `--batch True --dir D
--img_dir I`, lib/gs_4d_utils/main_4d_smplx.py:671-694):
  data/D/<case>/img/000_rgba.png … 013_rgba.png   RGBA frames: load_input, :377-398 (SEL_LIST of
      14, :31; with an alpha channel rembg is never called, :385)
  data/D/<case>/meshes/<i>_norm_smplx.obj          the posed SMPL-X mesh of frame i, same vertex
      order and faces as the model: GUI.__init__ :97-104, load_from_smplx_obj
      (gaussian_model_4d_canonical.py:137-142; only vertices and face normals are used)
  logs/output/I/<case>_square_rgba_smplx.npz       SMPL-X parameters of the canonical pose:
      load_from_smplx_path (gaussian_model_4d_canonical.py:144-214): global_orient, body_pose,
      left/right_hand_pose, jaw_pose, betas, expression, translation, scale
  logs/output/I/<case>_square_rgba_clothed_smplx.ply  one Gaussian per SMPL-X face (f_dc_*, obj_dc_0..15):
      create_from_canonical_smplx_winput (:658-742)
  logs/output/I/<case>_square_rgba_seg_model_dens4.ply  the clothing Gaussians (x, y, z, opacity,
      f_dc_*, scale_*, rot_*, obj_dc_0..15; kept where argmax obj_dc is 2..10): load_ply_categorical
      (:1519-1625, categories from gs_renderer_4d_canonical.py:155)
  gt/<i>_0.png   the frame on white at 512 px, named like the stage's front renders
      (main_4d_smplx.py:608-633: logs/<save_path>/<idx>_<deg>.png) for the PSNR check.
The canonical mesh is what the stage computes from the .npz: global_orient is a half turn about x
(the image stage fits in camera axes) and hand poses cancel the model's mean hand pose, so every
joint rotation is the identity but the root's, and the stage's own flip (SET_NEG, :193-204) turns
the figure upright, facing the camera (orbit_camera(0, 0, r) looks from +z, utils/cam_utils.py:60).

Usage: python disco4d_video.py OUT --asset smplx-neutral=PATH [--size 512]; prints one JSON line.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

DIR, IMG_DIR, CASE = "envbuilder_video", "envbuilder_img", "subject0"
FRAMES = 14  # SEL_LIST
RADIUS, FOVY = 1.5, 49.1  # the recipe's radius=1.5 and configs/4d.yaml's fovy
C0 = 0.28209479177387814  # SH band-0 constant: colour = 0.5 + C0 * f_dc
SHIRT_CATEGORY, SKIN_CATEGORY = 4, 1  # the stage keeps categories 2..10 as clothing
SKIN, SHIRT_A, SHIRT_B = (0.86, 0.68, 0.56), (0.16, 0.35, 0.70), (0.90, 0.90, 0.86)
LIFT = 0.004  # clothing sits this far outside the body


def load_model(path):
    data = np.load(path, allow_pickle=True)
    regressor = data["J_regressor"]
    if regressor.dtype == object:  # a pickled scipy sparse matrix
        regressor = regressor.item().toarray()
    return {
        "v": np.asarray(data["v_template"], dtype=np.float64),
        "f": np.asarray(data["f"], dtype=np.int64),
        "J0": np.asarray(regressor, dtype=np.float64)[0],
        "hands_meanl": np.asarray(data["hands_meanl"], dtype=np.float32).reshape(1, -1),
        "hands_meanr": np.asarray(data["hands_meanr"], dtype=np.float32).reshape(1, -1),
    }


def canonical(model):
    """The stage's canonical mesh before its normalisation: a half turn about x around the root
    joint, then y and z negated (which undoes the turn), so v - J0 + diag(1, -1, -1) J0."""
    j0 = model["J0"] @ model["v"]
    return model["v"] - j0 + j0 * [1.0, -1.0, -1.0]


def yaw(points, degrees):
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    return points @ rot.T


def face_normals(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def camera(size):
    """The stage's fixed camera (orbit_camera(0, 0, RADIUS) made a MiniCam): world to pixels."""
    focal = size / (2 * math.tan(math.radians(FOVY) / 2))

    def project(p):
        # MiniCam flips y and z of the OpenGL camera; the camera sits at +z looking at the origin
        x, y, z = p[:, 0], -p[:, 1], RADIUS - p[:, 2]
        return np.stack([focal * x / z + size / 2, focal * y / z + size / 2, z], axis=1)

    return project


def splat(points, colours, size):
    """Z-buffered points, 2 x 2 pixels each: an RGBA image (alpha 0 where nothing lies)."""
    uvz = camera(size)(points)
    image = np.zeros((size, size, 4))
    depth = np.full((size, size), np.inf)
    for du in (0, 1):
        for dv in (0, 1):
            u = np.floor(uvz[:, 0]).astype(int) + du
            v = np.floor(uvz[:, 1]).astype(int) + dv
            ok = (u >= 0) & (u < size) & (v >= 0) & (v < size)
            order = np.argsort(-uvz[ok, 2])  # far first, so near points overwrite them
            uu, vv, zz, cc = u[ok][order], v[ok][order], uvz[ok, 2][order], colours[ok][order]
            nearer = zz < depth[vv, uu]
            uu, vv, zz, cc = uu[nearer], vv[nearer], zz[nearer], cc[nearer]
            depth[vv, uu] = zz
            image[vv, uu, :3] = cc
            image[vv, uu, 3] = 1.0
    return image


def surface_samples(v, f, faces, per_face, rng):
    """Points spread over the given faces (barycentric), and which face each came from."""
    w = rng.dirichlet((1.0, 1.0, 1.0), size=(len(faces), per_face))
    tri = v[f[faces]]  # [n, 3, 3]
    points = np.einsum("nkj,njc->nkc", w, tri).reshape(-1, 3)
    return points, np.repeat(faces, per_face)


def write_ply(path, columns):
    """A binary little-endian PLY with one float vertex property per column (3DGS files' layout)."""
    names = list(columns)
    data = np.stack([np.asarray(columns[n], dtype=np.float32) for n in names], axis=1)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(data)}"]
    header += [f"property float {n}" for n in names] + ["end_header"]
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(data.astype("<f4").tobytes())


def gaussian_columns(xyz, rgb, opacity_logit, log_scale, category):
    n = len(xyz)
    cols = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "nx": np.zeros(n), "ny": np.zeros(n), "nz": np.zeros(n)}
    for c in range(3):
        cols[f"f_dc_{c}"] = (rgb[:, c] - 0.5) / C0
    cols["opacity"] = np.full(n, opacity_logit)
    for c in range(3):
        cols[f"scale_{c}"] = log_scale
    for c, value in enumerate((1.0, 0.0, 0.0, 0.0)):
        cols[f"rot_{c}"] = np.full(n, value)
    for k in range(16):
        cols[f"obj_dc_{k}"] = np.where(np.asarray(category) == k, 1.0, 0.0)
    return cols


def write(out, smplx_path, size, seed):
    rng = np.random.default_rng(seed)
    model = load_model(smplx_path)
    f = model["f"]
    raw = canonical(model)
    lo, hi = raw.min(0), raw.max(0)
    centre = (lo + hi) / 2
    scale = 0.9 / (hi[1] - lo[1])  # the figure spans 0.9 of the 1.37 units the camera sees at 1.5
    cano = (raw - centre) * scale
    normals = face_normals(cano, f)
    centroids = cano[f].mean(axis=1)
    height = (centroids[:, 1] - cano[:, 1].min()) / (cano[:, 1].max() - cano[:, 1].min())  # 0 feet, 1 head
    shirt = np.flatnonzero((height > 0.48) & (height < 0.78))
    body = np.setdiff1d(np.arange(len(f)), shirt)
    # per-face colours: shading bands so that the frames have detail to fit, stripes on the shirt
    skin_rgb = np.clip(np.asarray(SKIN)[None] * (0.85 + 0.15 * np.cos(40 * height))[:, None], 0, 1)
    stripes = (np.floor(height[shirt] * 24) % 2 == 0)[:, None]
    shirt_rgb = np.where(stripes, np.asarray(SHIRT_A)[None], np.asarray(SHIRT_B)[None])

    case = out / "data" / DIR / CASE
    logs = out / "logs" / "output" / IMG_DIR
    for d in (case / "img", case / "meshes", logs, out / "gt"):
        d.mkdir(parents=True, exist_ok=True)
    prefix = logs / f"{CASE}_square_rgba"
    np.savez(
        f"{prefix}_smplx.npz",
        global_orient=np.array([[math.pi, 0.0, 0.0]], dtype=np.float32),
        body_pose=np.zeros((1, 63), dtype=np.float32),
        left_hand_pose=-model["hands_meanl"],
        right_hand_pose=-model["hands_meanr"],
        jaw_pose=np.zeros((1, 3), dtype=np.float32),
        betas=np.zeros((1, 10), dtype=np.float32),
        expression=np.zeros((1, 10), dtype=np.float32),
        translation=centre.astype(np.float32),
        scale=np.array(scale, dtype=np.float32),
    )
    body_cols = gaussian_columns(centroids, skin_rgb, 8.0, np.full(len(f), -6.0), np.full(len(f), SKIN_CATEGORY))
    write_ply(f"{prefix}_clothed_smplx.ply", body_cols)
    area = 0.5 * np.linalg.norm(np.cross(cano[f[:, 1]] - cano[f[:, 0]], cano[f[:, 2]] - cano[f[:, 0]]), axis=1)
    cloth_xyz = centroids[shirt] + LIFT * normals[shirt]
    extra = body[np.linspace(0, len(body) - 1, 50).astype(int)]
    skin_extra = centroids[extra] + LIFT * normals[extra]
    cloth_cols = gaussian_columns(
        np.concatenate([cloth_xyz, skin_extra]),
        np.concatenate([shirt_rgb, np.tile(SKIN, (len(skin_extra), 1))]),
        4.0,
        np.concatenate([np.log(0.7 * np.sqrt(area[shirt])), np.full(len(skin_extra), -6.0)]),
        np.concatenate([np.full(len(shirt), SHIRT_CATEGORY), np.full(len(skin_extra), SKIN_CATEGORY)]),
    )  # the few skin-category points are dropped by the stage's category filter
    write_ply(f"{prefix}_seg_model_dens4.ply", cloth_cols)

    body_pts, body_face = surface_samples(cano, f, body, 12, rng)
    shirt_pts, shirt_face = surface_samples(cano, f, shirt, 12, rng)
    shirt_lift = LIFT * normals[shirt_face]
    shirt_lookup = np.full(len(f), -1)
    shirt_lookup[shirt] = np.arange(len(shirt))
    for i in range(FRAMES):
        phase = 2 * math.pi * i / FRAMES
        turn = 12.0 * math.sin(phase)
        posed = yaw(cano, turn)
        lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in posed]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f]
        (case / "meshes" / f"{i}_norm_smplx.obj").write_text("\n".join(lines) + "\n")
        slide = np.array([0.02 * math.sin(phase), 0.012 * math.cos(phase), 0.0])
        points = np.concatenate([yaw(body_pts, turn), yaw(shirt_pts + shirt_lift, turn) + slide])
        colours = np.concatenate([skin_rgb[body_face], shirt_rgb[shirt_lookup[shirt_face]]])
        rgba = splat(points, colours, size)
        Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(case / "img" / f"{i:03d}_rgba.png")
        white = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        Image.fromarray((white * 255).round().astype(np.uint8), "RGB").save(out / "gt" / f"{i}_0.png")
    return {
        "frames": FRAMES,
        "size": size,
        "faces": len(f),
        "vertices": len(cano),
        "clothing": len(shirt),
        "case": CASE,
        "dir": DIR,
        "img_dir": IMG_DIR,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--asset", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.asset)
    if "smplx-neutral" not in given:
        parser.error("needs --asset smplx-neutral=PATH (the SMPL-X neutral model the stage loads)")
    facts = write(args.out, Path(given["smplx-neutral"]), args.size, args.seed)
    print(json.dumps({"data": str(args.out), "inputs": [given["smplx-neutral"]], **facts}))


if __name__ == "__main__":
    main()
