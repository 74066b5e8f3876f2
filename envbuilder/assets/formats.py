"""Read the structure of model files without trusting them and without numpy or torch.

- pickles (FLAME/SMPL models, legacy torch files, torch zip checkpoints' data.pkl) are loaded
  with an Unpickler whose every global is an inert recording class: no module named in the file is
  imported and no function in it runs, so a malicious pickle can do nothing but describe itself;
- .npy/.npz headers, MATLAB v5 .mat variable tables, safetensors headers and zip directories are
  parsed directly.

Each reader returns a small description (shapes, keys, kinds) for the validators.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

MAX_PICKLE_BYTES = 2 * 2**30  # refuse to hold more than this in memory


class UnreadableFile(Exception):
    """The bytes are not what the format says (truncated, corrupt, another format)."""


# --- pickles ------------------------------------------------------------------------------------


class Recorded:
    """Stands in for any class or function a pickle names; records how it was called."""

    qualname = "?"
    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Recorded:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> Recorded:  # an instance used as a callable
        return _recorder(f"{self.qualname}()")(*args)

    def __repr__(self) -> str:
        return f"<{self.qualname}>"

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEMS on an OrderedDict() stand-in
        self.__dict__.setdefault("_items", {})[key] = value


_RECORDERS: dict[str, type[Recorded]] = {}


def _recorder(qualname: str) -> type[Recorded]:
    if qualname not in _RECORDERS:
        _RECORDERS[qualname] = type("Recorded", (Recorded,), {"qualname": qualname})
    return _RECORDERS[qualname]


@dataclass(frozen=True)
class TensorRef:
    """A torch storage reference (torch's persistent id)."""

    pid: Any


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _recorder(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        return TensorRef(pid)


def load_pickle(data: bytes | IO[bytes]) -> Any:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _SafeUnpickler(stream, encoding="latin1").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        MemoryError,
        RecursionError,
        UnicodeDecodeError,
    ) as exc:
        raise UnreadableFile(f"not a readable pickle ({type(exc).__name__}: {exc})") from None


def describe(value: Any, depth: int = 0) -> Any:
    """A JSON-able summary: dicts by key, arrays/tensors/sparse matrices as kind + shape."""
    if depth > 6:
        return "..."
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Recorded):
        if "_items" in value.__dict__:  # an OrderedDict (or other mapping) filled by SETITEMS
            return describe(value.__dict__["_items"], depth)
        return _describe_recorded(value)
    if isinstance(value, (list, tuple)):
        if len(value) > 8:
            return {"kind": type(value).__name__, "len": len(value)}
        return [describe(v, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"kind": "bytes", "len": len(value)}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return {"kind": type(value).__name__}


def _describe_recorded(obj: Recorded) -> Any:
    name = obj.qualname
    state = obj.state
    if name.endswith("multiarray._reconstruct") and isinstance(state, tuple) and len(state) >= 2:
        return {"kind": "ndarray", "shape": list(state[1])}
    if name.endswith("multiarray.scalar"):
        return {"kind": "numpy-scalar"}
    if name.startswith("scipy.sparse"):
        shape = None
        if isinstance(state, dict):
            shape = state.get("_shape") or state.get("shape")
        return {"kind": "sparse", "class": name, "shape": list(shape) if shape else None}
    if name.startswith("chumpy."):
        inner = state.get("x") if isinstance(state, dict) else None
        shape = _describe_recorded(inner).get("shape") if isinstance(inner, Recorded) else None
        return {"kind": "chumpy", "class": name, "shape": shape}
    if name.startswith("torch._utils._rebuild_tensor") and len(obj.args) >= 3:
        return {"kind": "tensor", "shape": list(obj.args[2])}
    if name.startswith("torch.") and name.endswith("Parameter") and obj.args:
        inner = obj.args[0]
        return describe(inner) if isinstance(inner, Recorded) else {"kind": "tensor"}
    if name.startswith("collections.OrderedDict"):
        return {"kind": "dict"}
    return {"kind": "object", "class": name}


def unwrap_ordered_dicts(value: Any) -> Any:
    """OrderedDict pickles as OrderedDict() followed by SETITEMS on our recorder: treat as dict."""
    if isinstance(value, Recorded) and "_items" in value.__dict__:
        return dict(value.__dict__["_items"])
    return value


# --- torch checkpoints ----------------------------------------------------------------------------

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def torch_structure(path_or_bytes: Any) -> bytes | None:
    """The pickled structure (data.pkl) of a zip-format torch.save file, read without its tensor
    data (a multi-GB checkpoint is not loaded); None for a legacy file."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    if not zipfile.is_zipfile(source):
        return None
    try:
        with zipfile.ZipFile(source) as zf:
            pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pkls:
                members = ", ".join(zf.namelist()[:5])
                raise UnreadableFile(
                    f"a zip archive, not a torch checkpoint (it holds {members} …): extract the checkpoint from it"
                )
            return zf.read(pkls[0])
    except zipfile.BadZipFile as exc:
        raise UnreadableFile(f"a damaged zip (torch checkpoint): {exc}") from None


def load_torch(path_or_bytes: Any) -> Any:
    """The object in a torch.save file (zip or legacy), tensors as references."""
    structure = torch_structure(path_or_bytes)
    if structure is not None:
        return unwrap_ordered_dicts(load_pickle(structure))
    if isinstance(path_or_bytes, bytes):
        data = path_or_bytes
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    stream = io.BytesIO(data)
    first = load_pickle(stream)
    if first == TORCH_LEGACY_MAGIC:
        load_pickle(stream)  # protocol version
        load_pickle(stream)  # sys info
        return unwrap_ordered_dicts(load_pickle(stream))
    raise UnreadableFile("a plain pickle, not a torch.save file (torch.load would stop at its magic number)")


# --- numpy --------------------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"


def npy_header(stream: IO[bytes]) -> dict[str, Any]:
    magic = stream.read(8)
    if magic[:6] != NPY_MAGIC:
        raise UnreadableFile("not a .npy array (no NUMPY magic)")
    major = magic[6]
    (length,) = struct.unpack("<H" if major == 1 else "<I", stream.read(2 if major == 1 else 4))
    try:
        header = ast.literal_eval(stream.read(length).decode("latin1"))
    except (ValueError, SyntaxError) as exc:
        raise UnreadableFile(f"corrupt .npy header: {exc}") from None
    if not isinstance(header, dict) or "shape" not in header:
        raise UnreadableFile("corrupt .npy header")
    return {"kind": "ndarray", "shape": list(header["shape"]), "dtype": str(header.get("descr"))}


def npz_members(data: bytes) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
            if bad:
                raise UnreadableFile(f"damaged .npz: member {bad} fails its CRC check")
            out = {}
            for name in zf.namelist():
                key = name.removesuffix(".npy")
                with zf.open(name) as member:
                    out[key] = npy_header(member) if name.endswith(".npy") else {"kind": "file"}
            return out
    except zipfile.BadZipFile as exc:
        raise UnreadableFile(f"not a .npz archive ({exc})") from None


# --- MATLAB v5 --------------------------------------------------------------------------------------

MI_MATRIX, MI_COMPRESSED, MI_INT8, MI_INT32, MI_UINT32 = 14, 15, 1, 5, 6


def mat_variables(data: bytes) -> dict[str, Any]:
    """Variable names and dimensions of a MATLAB v5/v7 .mat file (v7.3 is HDF5)."""
    if data[:4] == b"\x89HDF" or data[512:516] == b"\x89HDF":
        raise UnreadableFile("a MATLAB v7.3 (HDF5) file; the expected model is MATLAB v5/v7")
    if len(data) < 128 or not data[:6] == b"MATLAB":
        raise UnreadableFile("not a MATLAB .mat file (no 'MATLAB 5.0 MAT-file' header)")
    endian = "<" if data[126:128] == b"IM" else ">"
    variables: dict[str, Any] = {}
    pos = 128
    while pos + 8 <= len(data):
        outer, nbytes = struct.unpack_from(endian + "II", data, pos)
        dtype = outer
        body = data[pos + 8 : pos + 8 + nbytes]
        if len(body) < nbytes:
            raise UnreadableFile(f"truncated .mat file: an element needs {nbytes} bytes, {len(body)} remain")
        if dtype == MI_COMPRESSED:
            try:
                inner = zlib.decompressobj().decompress(body, 4096)  # the header is enough
            except zlib.error as exc:
                raise UnreadableFile(f"damaged compressed .mat element: {exc}") from None
            dtype, _ = struct.unpack_from(endian + "II", inner, 0)
            body = inner[8:]
        if dtype == MI_MATRIX:
            name, dims = _matrix_header(body, endian)
            variables[name] = {"kind": "matrix", "shape": dims}
        pos += 8 + nbytes + (-nbytes % 8 if outer != MI_COMPRESSED else 0)  # compressed ones are unpadded
    return variables


def _subelement(body: bytes, pos: int, endian: str) -> tuple[int, bytes, int]:
    """(type, data, next position) of a data element, in its normal or small form."""
    (first,) = struct.unpack_from(endian + "I", body, pos)
    if first >> 16:  # small data element: size in the upper half-word, data in the next 4 bytes
        size = first >> 16
        return first & 0xFFFF, body[pos + 4 : pos + 4 + size], pos + 8
    dtype, size = struct.unpack_from(endian + "II", body, pos)
    return dtype, body[pos + 8 : pos + 8 + size], pos + 8 + size + (-size % 8)


def _matrix_header(body: bytes, endian: str) -> tuple[str, list[int]]:
    """The dimensions and name of a miMATRIX (its first three subelements)."""
    try:
        _, _, pos = _subelement(body, 0, endian)  # array flags
        _, dims_raw, pos = _subelement(body, pos, endian)
        _, name_raw, _ = _subelement(body, pos, endian)
        dims = list(struct.unpack(endian + f"{len(dims_raw) // 4}i", dims_raw[: len(dims_raw) // 4 * 4]))
    except struct.error as exc:
        raise UnreadableFile(f"corrupt .mat matrix header ({exc})") from None
    return name_raw.decode("latin1"), dims


# --- safetensors, zip, html -----------------------------------------------------------------------


def safetensors_header(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise UnreadableFile("too short for safetensors")
    (length,) = struct.unpack_from("<Q", data, 0)
    if length > len(data) - 8 or length > 100 * 2**20:
        raise UnreadableFile("not safetensors, or truncated (header length beyond the file)")
    try:
        header = json.loads(data[8 : 8 + length])
    except ValueError as exc:
        raise UnreadableFile(f"corrupt safetensors header: {exc}") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max(
        (v["data_offsets"][1] for v in tensors.values() if isinstance(v, dict) and "data_offsets" in v), default=0
    )
    if 8 + length + end > len(data):
        raise UnreadableFile(f"truncated safetensors: tensors need {8 + length + end} bytes, the file has {len(data)}")
    return {k: {"kind": "tensor", "shape": v.get("shape"), "dtype": v.get("dtype")} for k, v in tensors.items()}


def zip_listing(data: bytes) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
            if bad:
                raise UnreadableFile(f"damaged zip: member {bad} fails its CRC check (truncated download?)")
            return zf.namelist()
    except (zipfile.BadZipFile, EOFError) as exc:
        raise UnreadableFile(f"not a complete zip archive ({exc})") from None


HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


def looks_like_html(head: bytes) -> bool:
    """A login or error page saved under a model's name."""
    text = head[:4096].lstrip().lower()
    return any(marker in text[:1024] for marker in HTML_MARKERS)


@dataclass
class FileCheck:
    """What a validator concluded about a present file."""

    status: str  # ok, or one of assets.PROBLEMS
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
