"""Is a file the asset it claims to be? Generic checks (empty, HTML page, size, checksum) then a
structural check per kind, built from public loader code (sources in each table's comment).
No licensed file was needed to write them, and none is executed: see formats.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from envbuilder.assets import formats
from envbuilder.assets.formats import FileCheck, UnreadableFile
from envbuilder.recipe.model import Asset

# key -> expected shape; None in a shape means "any size along this axis".
Shape = tuple[int | None, ...]

# FLAME (FLAME_PyTorch flame.py, DECA/EMOCA flame.py, CAP4D cap4d/flame/flame.py): 5023 vertices,
# 9976 triangles, 5 joints (root, neck, jaw, eyes), 300 shape + 100 expression components. FLAME
# 2020, 2023 and 2023-no-jaw share keys and shapes (no-jaw keeps its jaw joint unused), so only
# the file's name tells the variants apart: see FLAME_VARIANTS and install().
FLAME_KEYS: dict[str, Shape] = {
    "v_template": (5023, 3),
    "f": (9976, 3),
    "shapedirs": (5023, 3, None),
    "posedirs": (5023, 3, None),
    "J_regressor": (5, 5023),
    "weights": (5023, 5),
    "kintree_table": (2, 5),
}
FLAME_VARIANTS = {
    "generic_model.pkl": "FLAME 2020",
    "female_model.pkl": "FLAME 2020 (female)",
    "male_model.pkl": "FLAME 2020 (male)",
    "flame2023.pkl": "FLAME 2023 (with jaw)",
    "flame2023_no_jaw.pkl": "FLAME 2023 without jaw",
    "flame2023_Open.pkl": "FLAME 2023 Open",
}
# SMPL-X: vchoutas/smplx body_models.py (SMPLX): 10475 vertices, 20908 faces, 55 joints.
SMPLX_KEYS: dict[str, Shape] = {
    "v_template": (10475, 3),
    "f": (20908, 3),
    "shapedirs": (10475, 3, None),
    "posedirs": (10475, 3, None),
    "J_regressor": (55, 10475),
    "weights": (10475, 55),
    "kintree_table": (2, 55),
}
# SMPL: 6890 vertices, 13776 faces, 24 joints.
SMPL_KEYS: dict[str, Shape] = {
    "v_template": (6890, 3),
    "f": (13776, 3),
    "shapedirs": (6890, 3, None),
    "J_regressor": (24, 6890),
    "weights": (6890, 24),
    "kintree_table": (2, 24),
}
# BFM 2009 01_MorphableModel.mat (MATLAB 5 format, read by scipy.io.loadmat in AD-NeRF's
# convert_BFM.py): 53490 vertices x 3 = 160470 rows, 199 principal components; tl is the
# triangle list (its orientation is not published, so only its presence is checked).
BFM_VARIABLES: dict[str, Shape | None] = {
    "shapeMU": (160470, 1),
    "shapePC": (160470, 199),
    "shapeEV": (199, 1),
    "texMU": (160470, 1),
    "texPC": (160470, 199),
    "texEV": (199, 1),
    "tl": None,
}


def sha(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_blob(path: Path) -> str:
    """What `git hash-object` prints: sha1 over "blob <size>\\0" and the bytes."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)  # git's own object id
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _shape_ok(found: Any, expected: Shape) -> bool:
    if not isinstance(found, list) or len(found) != len(expected):
        return False
    return all(e is None or e == f for f, e in zip(found, expected, strict=True))


def _check_table(found: dict[str, Any], expected: Mapping[str, Shape | None], what: str) -> FileCheck:
    missing = [k for k in expected if k not in found]
    if missing:
        keys = ", ".join(sorted(found)[:12]) or "none"
        return FileCheck("wrong-structure", f"not a {what}: missing {', '.join(missing)} (it has {keys})")
    for key, shape in expected.items():
        got = found[key].get("shape") if isinstance(found[key], dict) else None
        if shape is not None and got is not None and not _shape_ok(got, shape):
            want = "x".join("*" if s is None else str(s) for s in shape)
            return FileCheck("wrong-structure", f"{what}: {key} has shape {'x'.join(map(str, got))}, expected {want}")
    return FileCheck("ok", f"{what}: {', '.join(f'{k} {_fmt(found[k])}' for k in list(expected)[:3])}", {"keys": found})


def _fmt(entry: Any) -> str:
    shape = entry.get("shape") if isinstance(entry, dict) else None
    return "x".join(map(str, shape)) if shape else "?"


def _model_table(path: Path) -> dict[str, Any]:
    """Keys and shapes of a body/face model saved as .npz or as a (chumpy) pickle."""
    data = path.read_bytes()
    if data[:2] == b"PK":
        return formats.npz_members(data)
    described = formats.describe(formats.load_pickle(data))
    if not isinstance(described, dict):
        raise UnreadableFile(f"the pickle holds a {type(described).__name__}, not a model dictionary")
    return described


def _flame(path: Path, asset: Asset) -> FileCheck:
    table = _model_table(path)
    finding = _check_table(table, FLAME_KEYS, "FLAME model")
    if finding.status != "ok":
        return finding
    chumpy = sorted(k for k, v in table.items() if isinstance(v, dict) and v.get("kind") == "chumpy")
    joints = table["kintree_table"].get("shape", [0, 0])[1]
    components = table["shapedirs"].get("shape", [0, 0, 0])[2]
    finding.facts.update(joints=joints, shape_components=components, chumpy=chumpy)
    finding.detail += f"; {joints} joints, {components} shape+expression components" + (
        "; chumpy arrays: " + ", ".join(chumpy) if chumpy else ""
    )
    return finding


def _smplx(path: Path, asset: Asset) -> FileCheck:
    return _check_table(_model_table(path), SMPLX_KEYS, "SMPL-X model")


def _smpl(path: Path, asset: Asset) -> FileCheck:
    return _check_table(_model_table(path), SMPL_KEYS, "SMPL model")


def _bfm(path: Path, asset: Asset) -> FileCheck:
    return _check_table(formats.mat_variables(path.read_bytes()), BFM_VARIABLES, "BFM 2009 model")


def _torch(path: Path, asset: Asset) -> FileCheck:
    obj = formats.load_torch(path)
    described = formats.describe(obj)
    tensors = _count_tensors(described)
    keys = sorted(described)[:8] if isinstance(described, dict) else []
    return FileCheck(
        "ok",
        f"torch checkpoint: {tensors} tensors" + (f"; keys {', '.join(keys)}" if keys else ""),
        {"tensors": tensors},
    )


def _count_tensors(value: Any) -> int:
    if isinstance(value, dict):
        if value.get("kind") == "tensor":
            return 1
        return sum(_count_tensors(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_tensors(v) for v in value)
    return 0


def _safetensors(path: Path, asset: Asset) -> FileCheck:
    header = formats.safetensors_header(path.read_bytes())
    return FileCheck("ok", f"safetensors: {len(header)} tensors", {"tensors": len(header)})


def _numpy(path: Path, asset: Asset) -> FileCheck:
    data = path.read_bytes()
    if data[:2] == b"PK":
        members = formats.npz_members(data)
        return FileCheck("ok", f".npz with {', '.join(sorted(members)[:8])}", {"keys": members})
    if data[:6] == formats.NPY_MAGIC:
        import io

        header = formats.npy_header(io.BytesIO(data))
        return FileCheck("ok", f".npy array {_fmt(header)}", header)
    described = formats.describe(formats.load_pickle(data))  # np.save of an object array / dict
    return FileCheck("ok", "pickled numpy data", {"value": described})


def _zip(path: Path, asset: Asset) -> FileCheck:
    names = formats.zip_listing(path.read_bytes())
    if asset.member and asset.member not in names:
        return FileCheck("wrong-structure", f"the archive lacks {asset.member} (it holds {', '.join(names[:6])})")
    return FileCheck("ok", f"zip with {len(names)} members")


def _graph(path: Path, asset: Asset) -> FileCheck:
    head = path.read_bytes()[:4]
    if head[:2] == b"PK":
        return FileCheck("wrong-structure", "a zip archive where the .pb graph belongs: extract it first")
    return FileCheck("ok", "frozen graph (content not parsed)")


def _file(path: Path, asset: Asset) -> FileCheck:
    return FileCheck("ok", f"{path.stat().st_size} bytes")


# Files that go with SMPL-X (SMPLer-X / ExPose, read by Disco4D's utils/human_models.py:25-29):
# the LSP-14 joint regressor (a pickled 14 x 10475 array), MANO's vertices in SMPL-X (778 per
# hand, {left_hand, right_hand}) and FLAME's vertices in SMPL-X (5023).
def _array_of(path: Path) -> Any:
    data = path.read_bytes()
    if data[:6] == formats.NPY_MAGIC:
        import io

        return formats.npy_header(io.BytesIO(data))
    return formats.describe(formats.load_pickle(data))


def _shaped(found: Any, shape: Shape, what: str) -> FileCheck:
    got = found.get("shape") if isinstance(found, dict) else None
    if found is None or not isinstance(found, dict) or found.get("kind") not in ("ndarray", "sparse"):
        kind = found.get("kind") if isinstance(found, dict) else type(found).__name__
        return FileCheck("wrong-structure", f"not {what}: it holds a {kind}, not an array")
    if got is not None and not _shape_ok(got, shape):
        want = "x".join("*" if v is None else str(v) for v in shape)
        return FileCheck("wrong-structure", f"{what}: shape {'x'.join(map(str, got))}, expected {want}")
    return FileCheck("ok", f"{what}: {'x'.join(map(str, got or []))}")


def _j14(path: Path, asset: Asset) -> FileCheck:
    return _shaped(_array_of(path), (14, 10475), "an SMPL-X to LSP-14 joint regressor")


def _mano_ids(path: Path, asset: Asset) -> FileCheck:
    found = _array_of(path)
    if not isinstance(found, dict) or not {"left_hand", "right_hand"} <= set(found):
        keys = ", ".join(sorted(found)) if isinstance(found, dict) else "no keys"
        return FileCheck(
            "wrong-structure", f"not MANO's SMPL-X vertex ids: needs left_hand and right_hand (it has {keys})"
        )
    for hand in ("left_hand", "right_hand"):
        finding = _shaped(found[hand], (778,), f"MANO {hand} vertex ids")
        if finding.status != "ok":
            return finding
    return FileCheck("ok", "MANO vertex ids in SMPL-X: 778 per hand", {"keys": found})


def _flame_ids(path: Path, asset: Asset) -> FileCheck:
    return _shaped(_array_of(path), (5023,), "FLAME's vertex ids in SMPL-X")


VALIDATORS: dict[str, Callable[[Path, Asset], FileCheck]] = {
    "file": _file,
    "flame-pkl": _flame,
    "bfm-mat": _bfm,
    "smplx-model": _smplx,
    "smpl-model": _smpl,
    "torch-checkpoint": _torch,
    "safetensors": _safetensors,
    "numpy": _numpy,
    "zip": _zip,
    "tensorflow-graph": _graph,
    "smplx-j14-regressor": _j14,
    "smplx-mano-vertex-ids": _mano_ids,
    "smplx-flame-vertex-ids": _flame_ids,
}

# Every stand-in envbuilder writes carries this name: a key of a model dictionary or .npz, a .mat
# variable, or an entry of a torch state dict's _metadata (stubgen.py, standin_weights.py). No
# check may take such a file for the licensed one, whatever the registry says.
STAND_IN_KEY = "envbuilder_stand_in"


def carries_stand_in_marker(path: Path, finding: FileCheck) -> bool:
    keys = finding.facts.get("keys")
    if isinstance(keys, dict) and STAND_IN_KEY in keys:
        return True
    with path.open("rb") as f:  # bare arrays carry it after their data
        f.seek(max(0, path.stat().st_size - 512))
        if STAND_IN_KEY.encode() in f.read():
            return True
    try:
        structure = formats.torch_structure(path)
    except UnreadableFile:
        return False
    return structure is not None and STAND_IN_KEY.encode() in structure


def validate(path: Path, asset: Asset, trusted_sha256: str | None = None) -> FileCheck:
    """Generic checks first (they explain the common failures best), then the kind's structure."""
    size = path.stat().st_size
    if size == 0:
        return FileCheck("empty", "0 bytes: the download failed or was interrupted")
    with path.open("rb") as f:
        head = f.read(4096)
    if looks_html := formats.looks_like_html(head):
        return FileCheck(
            "html-page", "an HTML page saved under the model's name (a login or error page?)", {"html": looks_html}
        )
    if asset.size and size < asset.size:
        return FileCheck("truncated", f"{size} bytes, expected {asset.size}: an interrupted download")
    for algorithm, expected in (("sha256", asset.sha256), ("sha1", asset.sha1)):
        if expected and sha(path, algorithm) != expected:
            return FileCheck("checksum-mismatch", f"{algorithm} differs from the published {expected[:12]}…")
    if asset.git_blob and git_blob(path) != asset.git_blob:
        return FileCheck("checksum-mismatch", f"git blob hash differs from upstream's {asset.git_blob[:12]}…")
    if trusted_sha256 and sha(path, "sha256") != trusted_sha256:
        return FileCheck(
            "checksum-mismatch", f"sha256 differs from the one recorded when it was installed ({trusted_sha256[:12]}…)"
        )
    try:
        finding = VALIDATORS[asset.kind](path, asset)
    except UnreadableFile as exc:
        return FileCheck("wrong-structure", str(exc))
    except OSError as exc:
        return FileCheck("wrong-structure", f"cannot read: {exc.strerror}")
    if finding.status == "ok" and carries_stand_in_marker(path, finding):
        finding.facts["stand_in"] = True
        finding.detail += "; an envbuilder stand-in (made-up values), not the real file"
    return finding
