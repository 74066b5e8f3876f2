"""Write structurally valid stand-ins for licensed models (right keys and shapes, random values).

Standalone on purpose: it runs with the env's Python, which has numpy (and scipy for .mat files),
reads a JSON list of {"kind", "path"} on stdin and prints one JSON line of what it wrote. The
shapes follow envbuilder/assets/validate.py, which checks the result like any real file.
"""

import json
import pickle
import sys

import numpy as np

rng = np.random.default_rng(0)


def body_model(vertices, faces, joints, shape_components, pose_components, parents):
    weights = rng.random((vertices, joints))
    return {
        "v_template": rng.standard_normal((vertices, 3)) * 0.1,
        "f": rng.integers(0, vertices, size=(faces, 3)).astype(np.uint32),
        "shapedirs": (rng.standard_normal((vertices, 3, shape_components)) * 1e-3).astype(np.float32),
        "posedirs": (rng.standard_normal((vertices, 3, pose_components)) * 1e-3).astype(np.float32),
        "J_regressor": rng.random((joints, vertices)) / vertices,
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": np.array([parents, list(range(joints))], dtype=np.int64),
        "J": rng.standard_normal((joints, 3)) * 0.1,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


FLAME_PARENTS = [4294967295, 0, 1, 1, 1]  # root, neck, jaw, left eye, right eye
SMPL_PARENTS = [4294967295, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPLX_PARENTS = SMPL_PARENTS[:22] + [15, 22, 22] + [20] * 15 + [21] * 15  # body, jaw/eyes, two hands (flattened)


def write(kind, path):
    if kind == "flame-pkl":
        with open(path, "wb") as f:
            pickle.dump(body_model(5023, 9976, 5, 400, 36, FLAME_PARENTS), f, protocol=2)
    elif kind == "smpl-model":
        with open(path, "wb") as f:
            pickle.dump(body_model(6890, 13776, 24, 10, 207, SMPL_PARENTS), f, protocol=2)
    elif kind == "smplx-model":
        model = body_model(10475, 20908, 55, 400, 486, SMPLX_PARENTS)
        model.update(
            hands_componentsl=rng.standard_normal((45, 45)),
            hands_componentsr=rng.standard_normal((45, 45)),
            hands_meanl=np.zeros(45),
            hands_meanr=np.zeros(45),
            lmk_faces_idx=rng.integers(0, 20908, size=51),
            lmk_bary_coords=np.full((51, 3), 1 / 3),
        )
        if path.endswith(".npz"):
            np.savez(path, **{k: np.asarray(v) for k, v in model.items()})
        else:
            with open(path, "wb") as f:
                pickle.dump(model, f, protocol=2)
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
            },
            do_compression=True,
        )
    else:
        raise ValueError(kind)


def main():
    wanted = json.load(sys.stdin)
    written = []
    for item in wanted:
        write(item["kind"], item["path"])
        written.append(item["path"])
    print(json.dumps({"written": written}))


if __name__ == "__main__":
    main()
