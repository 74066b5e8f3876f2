"""Write structurally valid stand-ins for licensed models (right keys and shapes, made-up values).

Standalone on purpose: it runs with the env's Python, which has numpy (and scipy for .mat files),
reads a JSON list of {"kind", "path"} on stdin and prints one JSON line of what it wrote. The
shapes follow envbuilder/assets/validators.py, which checks the result like any real file.

Body and face models get a real surface, not random triangles: code that binds Gaussians to faces
or rasterises the mesh (CAP4D, Disco4D) needs triangles with area, an outward orientation and no
repeated vertex. The surface is one of revolution (a head, or a head-neck-torso-legs column) with
exactly the real model's vertex and face counts, every vertex used by a face, a boundary ring where
the count demands one (FLAME's neck, SMPL-X's feet), joints on its axis and skinning weights by
height. Every file carries STAND_IN_KEY, so no later check can take it for the licensed model.

FLAME and SMPL pickles are written the way the official files are, where the env allows: arrays as
chumpy objects and the joint regressor as a scipy sparse matrix. The stand-in then goes through
the same loading code as the licensed file, including what breaks on a modern stack (chumpy on
NumPy >= 1.24), instead of passing where the real file would not.
"""

import json
import math
import pickle
import sys

import numpy as np

STAND_IN_KEY = "envbuilder_stand_in"
STAND_IN_TEXT = "stand-in written by envbuilder: made-up values with the real model's keys and shapes"

rng = np.random.default_rng(0)

# --- the surface -----------------------------------------------------------------------------------


def ring_sizes(total, rings, last=None):
    """Split `total` vertices over `rings` rings (the last one fixed to `last` when given)."""
    if last is not None:
        head = ring_sizes(total - last, rings - 1)
        return [*head, last]
    base, extra = divmod(total, rings)
    return [base + (1 if i < extra else 0) for i in range(rings)]


def zipper(a_ids, b_ids, a_offset, b_offset):
    """Triangles between two rings (a above b) by walking both in angle: len(a) + len(b) of them."""
    a, b = len(a_ids), len(b_ids)
    i = j = 0
    tris = []
    while i < a or j < b:
        next_a = (i + 1 + a_offset) / a
        next_b = (j + 1 + b_offset) / b
        if j >= b or (i < a and next_a <= next_b):
            tris.append((a_ids[i % a], b_ids[j % b], a_ids[(i + 1) % a]))
            i += 1
        else:
            tris.append((a_ids[i % a], b_ids[j % b], b_ids[(j + 1) % b]))
            j += 1
    return tris


def revolution_surface(n_vertices, n_faces, radius, depth, height, centre):
    """A surface of revolution about the y axis with exactly n_vertices and n_faces.

    radius(t) gives the ring radius at t in (0, 1), t = 0 at the top; depth squeezes z. A closed
    sphere-like surface has 2V - 4 faces; d fewer faces are made by leaving the bottom open, with a
    boundary ring of d + 2 vertices (one vertex and d + 2 fan triangles fewer)."""
    deficit = 2 * n_vertices - 4 - n_faces
    if deficit < 0 or deficit == 1:
        raise ValueError(f"no open or closed sphere has {n_vertices} vertices and {n_faces} faces")
    closed = deficit == 0
    ring_vertices = n_vertices - (2 if closed else 1)
    rings = max(3, round(math.sqrt(ring_vertices / 2)))
    sizes = ring_sizes(ring_vertices, rings, None if closed else deficit + 2)
    last_t = 1.0 - 0.5 / (rings + 1) if closed else 0.93  # an open bottom stops short of the pole
    ts = np.linspace(0.0, last_t, rings + 1)[1:] if not closed else np.linspace(0.0, 1.0, rings + 2)[1:-1]
    positions = [(0.0, centre[1] + height / 2, centre[2])]  # top pole
    ids, offsets = [], []
    for k, (n, t) in enumerate(zip(sizes, ts, strict=True)):
        offset = 0.5 * (k % 2)
        angles = 2 * math.pi * (np.arange(n) + offset) / n
        r = radius(t)
        ring = np.stack(
            [
                centre[0] + r * np.sin(angles),
                np.full(n, centre[1] + height / 2 - t * height),
                centre[2] + depth * r * np.cos(angles),
            ],
            axis=1,
        )
        ids.append(list(range(len(positions), len(positions) + n)))
        offsets.append(offset)
        positions.extend(map(tuple, ring))
    faces = [(0, ids[0][i], ids[0][(i + 1) % sizes[0]]) for i in range(sizes[0])]  # top fan
    for k in range(rings - 1):
        faces += zipper(ids[k], ids[k + 1], offsets[k], offsets[k + 1])
    if closed:
        bottom = len(positions)
        positions.append((0.0, centre[1] - height / 2, centre[2]))
        last = ids[-1]
        faces += [(bottom, last[(i + 1) % len(last)], last[i]) for i in range(len(last))]
    v = np.asarray(positions, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if signed_volume(v, f) < 0:  # make the normals point outwards
        f = f[:, [0, 2, 1]]
    assert v.shape == (n_vertices, 3) and f.shape == (n_faces, 3), (v.shape, f.shape)
    return v, f


def signed_volume(v, f):
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def head_radius(t):
    """An egg-shaped head, cut at the neck (FLAME's template is about 0.21 x 0.32 x 0.23 m)."""
    return 0.105 * math.sqrt(max(1e-4, 1.0 - (2.0 * t - 1.0) ** 2)) * (1.0 - 0.15 * t)


BODY_PROFILE = [  # (t from the top, radius) of a standing figure, metres: head, neck, torso, legs
    (0.00, 0.010),
    (0.03, 0.070),
    (0.07, 0.090),
    (0.11, 0.070),
    (0.14, 0.050),
    (0.18, 0.160),
    (0.22, 0.200),
    (0.35, 0.160),
    (0.45, 0.140),
    (0.52, 0.180),
    (0.60, 0.160),
    (0.80, 0.100),
    (0.95, 0.060),
    (1.00, 0.040),
]


def body_radius(t):
    ts, rs = zip(*BODY_PROFILE, strict=True)
    return float(np.interp(t, ts, rs))


# --- skinning ----------------------------------------------------------------------------------------


def ring_regressor(v, heights):
    """One row per joint: the mean of the vertices of the ring nearest each height (on the axis)."""
    ys = np.unique(v[:, 1].round(9))
    rows = np.zeros((len(heights), len(v)))
    for j, y in enumerate(heights):
        ring = np.isclose(v[:, 1], ys[np.abs(ys - y).argmin()])
        rows[j, ring] = 1.0 / ring.sum()
    return rows


def height_weights(v, joint_heights, usable):
    """Skinning weights falling off with the height difference to each usable joint."""
    weights = np.zeros((len(v), len(joint_heights)))
    cols = np.asarray(usable)
    d = v[:, 1:2] - np.asarray(joint_heights)[None, cols]
    w = np.exp(-0.5 * (d / 0.05) ** 2) + 1e-9
    weights[:, cols] = w / w.sum(axis=1, keepdims=True)
    return weights


def body_model(v, f, joint_heights, parents, shape_components, pose_components, usable=None):
    usable = list(range(len(joint_heights))) if usable is None else usable
    j_regressor = ring_regressor(v, joint_heights)
    return {
        "v_template": v,
        "f": f.astype(np.uint32),
        "shapedirs": (rng.standard_normal((len(v), 3, shape_components)) * 1e-4).astype(np.float32),
        "posedirs": (rng.standard_normal((len(v), 3, pose_components)) * 1e-4).astype(np.float32),
        "J_regressor": j_regressor,
        "weights": height_weights(v, joint_heights, usable),
        "kintree_table": np.array([parents, list(range(len(parents)))], dtype=np.int64),
        "J": j_regressor @ v,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        STAND_IN_KEY: STAND_IN_TEXT,
    }


ROOT = 4294967295  # what the official pickles store for "no parent"
FLAME_PARENTS = [ROOT, 0, 1, 1, 1]  # root, neck, jaw, left eye, right eye
SMPL_PARENTS = [ROOT, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPLX_PARENTS = SMPL_PARENTS[:22] + [15, 15, 15] + [20] * 15 + [21] * 15  # body, jaw and eyes, hands (flattened)
# joint heights as t from the top of the figure (pelvis, hips, spine, knees, ..., wrists)
SMPL_T = [0.52, 0.55, 0.55, 0.45, 0.75, 0.75, 0.38, 0.95, 0.95, 0.30, 0.98, 0.98]
SMPL_T += [0.16, 0.20, 0.20, 0.08, 0.21, 0.21, 0.35, 0.35, 0.48, 0.48, 0.52, 0.52]
SMPLX_T = SMPL_T[:22] + [0.11, 0.07, 0.07] + [0.50] * 30
BODY_HEIGHT, BODY_CENTRE = 1.7, (0.0, -0.35, 0.0)  # SMPL's template spans about y -1.2 .. 0.5
FLAME_HEIGHT, FLAME_CENTRE = 0.32, (0.0, -0.03, -0.035)


def heights(ts, height, centre):
    return [centre[1] + height / 2 - t * height for t in ts]


def chumpy():
    """chumpy, importable on a modern NumPy and Python the way CAP4D's fix_flame_pickle.py does it
    (its aliases are set in this process only); None where it is not installed."""
    import inspect

    for name, value in (("bool", bool), ("int", int), ("float", float), ("complex", complex)):
        if name not in np.__dict__:
            setattr(np, name, value)
    for name, value in (("object", object), ("unicode", str), ("str", str)):
        if name not in np.__dict__:
            setattr(np, name, value)
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = inspect.getfullargspec
    try:
        import chumpy as ch
    except ImportError:
        return None
    return ch


def as_official(model, chumpy_keys):
    """The official pickles' types: chumpy arrays and a sparse regressor (when chumpy and scipy are
    installed, as in the envs that load these files)."""
    ch = chumpy()
    try:
        import scipy.sparse
    except ImportError:
        return model, False
    if ch is None:
        return model, False
    out = dict(model)
    for key in chumpy_keys:
        out[key] = ch.array(model[key])
    out["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"])
    return out, True


CHUMPY_KEYS = ("v_template", "shapedirs", "posedirs", "weights", "J")


def flame():
    v, f = revolution_surface(5023, 9976, head_radius, 1.05, FLAME_HEIGHT, FLAME_CENTRE)
    joints = heights([0.95, 0.85, 0.7, 0.4, 0.4], FLAME_HEIGHT, FLAME_CENTRE)
    # everything follows the neck: a no-jaw model, and eyes that move nothing
    return body_model(v, f, joints, FLAME_PARENTS, 400, 36, usable=[1])


def smpl():
    v, f = revolution_surface(6890, 13776, body_radius, 0.6, BODY_HEIGHT, BODY_CENTRE)
    return body_model(v, f, heights(SMPL_T, BODY_HEIGHT, BODY_CENTRE), SMPL_PARENTS, 10, 207, usable=range(22))


def smplx():
    v, f = revolution_surface(10475, 20908, body_radius, 0.6, BODY_HEIGHT, BODY_CENTRE)
    model = body_model(v, f, heights(SMPLX_T, BODY_HEIGHT, BODY_CENTRE), SMPLX_PARENTS, 400, 486, usable=range(22))
    n_faces = len(f)
    bary = rng.random((79, 17, 3)) + 0.1
    model.update(
        hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45),
        hands_meanl=np.zeros(45),
        hands_meanr=np.zeros(45),
        lmk_faces_idx=rng.integers(0, n_faces, size=51),
        lmk_bary_coords=np.full((51, 3), 1 / 3),
        # face contour landmarks per head yaw (-39..39 degrees), read with use_face_contour=True
        dynamic_lmk_faces_idx=rng.integers(0, n_faces, size=(79, 17)),
        dynamic_lmk_bary_coords=bary / bary.sum(axis=-1, keepdims=True),
    )
    return model


def smplx_vertex_count():
    return 10475


def write(kind, path):
    """Write one stand-in; returns facts about it."""
    if kind in ("flame-pkl", "smpl-model"):
        model, official = as_official(flame() if kind == "flame-pkl" else smpl(), CHUMPY_KEYS)
        dump_pickle(model, path)
        return {"chumpy": official}
    if kind == "smplx-model":
        model = smplx()
        if path.endswith(".npz"):
            np.savez(path, **{k: np.asarray(v) for k, v in model.items()})
        else:
            dump_pickle(model, path)
    elif kind == "smplx-j14-regressor":
        # ExPose's SMPLX_to_J14.pkl: a 14 x 10475 regressor of the LSP joints
        v = smplx()["v_template"]
        ts = [0.95, 0.75, 0.55, 0.55, 0.75, 0.95, 0.48, 0.35, 0.21, 0.21, 0.35, 0.48, 0.16, 0.05]
        regressor = ring_regressor(v, heights(ts, BODY_HEIGHT, BODY_CENTRE))
        dump_pickle(regressor, path)  # a bare array, as upstream
        mark_trailer(path)
    elif kind == "smplx-mano-vertex-ids":
        ids = rng.permutation(smplx_vertex_count())
        dump_pickle(
            {"left_hand": np.sort(ids[:778]), "right_hand": np.sort(ids[778:1556]), STAND_IN_KEY: STAND_IN_TEXT}, path
        )
    elif kind == "smplx-flame-vertex-ids":
        v = smplx()["v_template"]
        np.save(path, np.argsort(-v[:, 1], kind="stable")[:5023].astype(np.int64))  # the top of the figure
        mark_trailer(path)
    elif kind == "bfm-mat":
        import scipy.io

        n = 160470
        scipy.io.savemat(
            path,
            {
                "shapeMU": rng.standard_normal((n, 1)).astype(np.float32),
                "shapePC": np.zeros((n, 199), dtype=np.float32),  # zeros: valid, and compresses to nothing
                "shapeEV": rng.random((199, 1)).astype(np.float32),
                "texMU": rng.random((n, 1)).astype(np.float32) * 255,
                "texPC": np.zeros((n, 199), dtype=np.float32),
                "texEV": rng.random((199, 1)).astype(np.float32),
                "tl": rng.integers(1, n // 3, size=(106466, 3)).astype(np.int32),
                "segbin": np.zeros((n // 3, 4), dtype=np.uint8),
                STAND_IN_KEY: STAND_IN_TEXT,
            },
            do_compression=True,
        )
    else:
        raise ValueError(kind)
    return {}


def mark_trailer(path):
    """A bare array has no key to hold the marker: append it after the data, where pickle.load
    and np.load stop reading."""
    with open(path, "ab") as f:
        f.write(f"\n# {STAND_IN_KEY}: {STAND_IN_TEXT}\n".encode())


def dump_pickle(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def main():
    wanted = json.load(sys.stdin)
    written, facts = [], {}
    for item in wanted:
        facts[item["path"]] = write(item["kind"], item["path"])
        written.append(item["path"])
    print(json.dumps({"written": written, "facts": facts}))


if __name__ == "__main__":
    main()
