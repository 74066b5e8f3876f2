"""Assets: structural validation of real-format files (written here by numpy/scipy/pickle, never
licensed ones), a pickle that would run code if loaded naively, install, fetch, stubs, CLI."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import pickle
import socketserver
import struct
import sys
import threading
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from envbuilder import assets
from envbuilder.assets import formats, validators
from envbuilder.assets.fetch import DownloadError, download
from envbuilder.errors import EnvbuilderError, exit_code_for
from envbuilder.recipe.catalog import Catalog

from helpers import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "data"
RECIPE = Catalog.default([FIXTURES]).recipe("fixture-assets")
ASSETS = {a.name: a for a in RECIPE.assets}


def flame_dict(vertices: int = 5023, joints: int = 5) -> dict:
    return {
        "v_template": np.zeros((vertices, 3)),
        "f": np.zeros((9976, 3), np.uint32),
        "shapedirs": np.zeros((vertices, 3, 400), np.float32),
        "posedirs": np.zeros((vertices, 3, 36), np.float32),
        "J_regressor": np.zeros((joints, vertices)),
        "weights": np.zeros((vertices, joints)),
        "kintree_table": np.zeros((2, joints), np.int64),
    }


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def torch_like_checkpoint(keys: dict[str, tuple[int, ...]]) -> bytes:
    """The zip layout torch.save writes: archive/data.pkl whose tensors are persistent ids,
    rebuilt by torch._utils._rebuild_tensor_v2 (pickled here without torch)."""
    fake = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only pickled by name
        return args

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    fake._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Storage:
        pass

    class Tensor:
        def __init__(self, shape):
            self.shape = shape

        def __reduce__(self):
            return (_rebuild_tensor_v2, (Storage(), 0, self.shape, (1,) * len(self.shape), False, None))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "FloatStorage", "0", "cpu", 1) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    sys.modules.setdefault("torch", types.ModuleType("torch"))
    sys.modules["torch._utils"] = fake
    try:
        Pickler(buffer, protocol=2).dump({k: Tensor(v) for k, v in keys.items()})
    finally:
        del sys.modules["torch._utils"]
        if not hasattr(sys.modules["torch"], "__file__"):
            del sys.modules["torch"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", buffer.getvalue())
        zf.writestr("archive/version", "3\n")
    return out.getvalue()


# --- validators ----------------------------------------------------------------------------------------


def test_flame_pickle_plain_and_wrong(tmp_path):
    ok = write(tmp_path / "ok.pkl", pickle.dumps(flame_dict(), protocol=2))
    finding = validators.validate(ok, ASSETS["flame"])
    assert finding.status == "ok" and finding.facts["joints"] == 5 and finding.facts["shape_components"] == 400
    missing = flame_dict()
    del missing["kintree_table"]
    assert (
        "missing kintree_table"
        in validators.validate(write(tmp_path / "m.pkl", pickle.dumps(missing)), ASSETS["flame"]).detail
    )
    smpl_sized = write(tmp_path / "s.pkl", pickle.dumps(flame_dict(vertices=6890)))
    finding = validators.validate(smpl_sized, ASSETS["flame"])
    assert finding.status == "wrong-structure" and "v_template has shape 6890x3, expected 5023x3" in finding.detail


def test_chumpy_pickle_is_read_without_chumpy(tmp_path):
    chumpy = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    chumpy.Ch = Ch
    sys.modules["chumpy"] = types.ModuleType("chumpy")
    sys.modules["chumpy.ch"] = chumpy
    try:
        model = flame_dict()
        model["shapedirs"] = Ch(model["shapedirs"])
        data = pickle.dumps(model, protocol=2)
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]
    finding = validators.validate(write(tmp_path / "c.pkl", data), ASSETS["flame"])
    assert finding.status == "ok" and finding.facts["chumpy"] == ["shapedirs"]


def test_reading_a_pickle_never_runs_its_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"v_template": Evil()})
    finding = validators.validate(write(tmp_path / "evil.pkl", data), ASSETS["flame"])
    assert not marker.exists()
    assert finding.status == "wrong-structure"
    assert formats.describe(formats.load_pickle(data))["v_template"]["class"] in ("posix.system", "os.system")


def bfm_variables(tl_rows: int) -> dict[str, np.ndarray]:
    """Zero arrays shaped like the BFM 2009 .mat variables (53490 vertices, 199 components)."""
    shapes = {k: (160470, 1) for k in ("shapeMU", "texMU")} | {k: (160470, 199) for k in ("shapePC", "texPC")}
    shapes |= {k: (199, 1) for k in ("shapeEV", "texEV")} | {"tl": (tl_rows, 3)}
    return {k: np.zeros(shape, np.float32) for k, shape in shapes.items()}


def test_bfm_mat_v5_and_v7_compressed(tmp_path):
    variables = bfm_variables(tl_rows=106466)
    for compressed in (False, True):
        path = tmp_path / f"bfm{compressed}.mat"
        scipy.io.savemat(path, variables, do_compression=compressed)
        assert validators.validate(path, ASSETS["bfm"]).status == "ok"
    del variables["texPC"]
    scipy.io.savemat(tmp_path / "bad.mat", variables, do_compression=True)
    assert "missing texPC" in validators.validate(tmp_path / "bad.mat", ASSETS["bfm"]).detail


def test_smplx_npz(tmp_path):
    keys = {
        "v_template": (10475, 3),
        "f": (20908, 3),
        "shapedirs": (10475, 3, 400),
        "posedirs": (10475, 3, 486),
        "J_regressor": (55, 10475),
        "weights": (10475, 55),
        "kintree_table": (2, 55),
    }
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, **{k: np.zeros(s, np.float32) for k, s in keys.items()})
    assert validators.validate(path, ASSETS["smplx"]).status == "ok"


def test_torch_checkpoint_and_a_zip_in_its_place(tmp_path):
    ckpt = write(
        tmp_path / "79999_iter.pth", torch_like_checkpoint({"cp.conv.weight": (64, 3, 7, 7), "cp.bn.bias": (64,)})
    )
    finding = validators.validate(ckpt, ASSETS["parsing"])
    assert finding.status == "ok" and finding.facts["tensors"] == 2
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("face_parsing/README.md", "weights inside")
    finding = validators.validate(write(tmp_path / "zip.pth", archive.getvalue()), ASSETS["parsing"])
    assert finding.status == "wrong-structure" and "a zip archive, not a torch checkpoint" in finding.detail


def test_safetensors_and_truncation(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    good = struct.pack("<Q", len(header)) + header + bytes(16)
    assert validators.validate(write(tmp_path / "a.safetensors", good), ASSETS["weights"]).status == "ok"
    finding = validators.validate(write(tmp_path / "b.safetensors", good[:-4]), ASSETS["weights"])
    assert finding.status == "wrong-structure" and "truncated" in finding.detail


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><head><title>Sign in</title>", "html-page"),
        (b"\n  <html><body>Please log in to download FLAME</body></html>", "html-page"),
        (b"\x80\x02}q\x00.", "wrong-structure"),  # a pickle, but an empty dict
        (b"garbage" * 10, "wrong-structure"),
    ],
)
def test_generic_failures(tmp_path, content, status):
    assert validators.validate(write(tmp_path / "x.pkl", content), ASSETS["flame"]).status == status


def test_truncated_npz_is_caught(tmp_path):
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, v_template=np.zeros((10475, 3)))
    data = path.read_bytes()
    assert validators.validate(write(path, data[: len(data) // 2]), ASSETS["smplx"]).status == "wrong-structure"


# --- check, install, stub ----------------------------------------------------------------------------------


def test_check_reports_and_exit_codes(tmp_path):
    statuses = assets.check(RECIPE, tmp_path)
    assert {s.asset.name: s.status for s in statuses} == dict.fromkeys(ASSETS, "missing")
    assert exit_code_for([assets.verdict(statuses)]) == 3
    assert assets.blocked_steps(statuses) == {"train": ["flame", "parsing"], "preprocess": ["bfm"]}
    write(tmp_path / ASSETS["flame"].path, b"<html>login</html>")
    assert exit_code_for([assets.verdict(assets.check(RECIPE, tmp_path))]) == 1


def test_a_missing_free_data_set_does_not_block_a_build(tmp_path):
    """4DGaussians names the real D-NeRF scenes (free, not needed by its smoke run)."""
    recipe = Catalog.default().recipe("4dgaussians")
    (statuses,) = [assets.check(recipe, tmp_path)]
    assert [(s.asset.gated, s.asset.needed_by, s.status) for s in statuses] == [(False, (), "missing")]
    assert exit_code_for([assets.verdict(statuses)]) == 3  # `envbuilder assets` still says something is missing
    assert exit_code_for([assets.build_verdict(statuses)]) == 0
    fixture = assets.check(RECIPE, tmp_path)  # gated or needed by a smoke step: blocked
    assert exit_code_for([assets.build_verdict(fixture)]) == 3


def test_install_from_the_downloaded_zip_and_trust_on_first_use(tmp_path):
    download_zip = tmp_path / "downloads" / "FLAME2023.zip"
    download_zip.parent.mkdir()
    with zipfile.ZipFile(download_zip, "w") as zf:
        zf.writestr("flame2023_no_jaw.pkl", pickle.dumps(flame_dict(), protocol=2))
        zf.writestr("Readme.pdf", "x")
    root = tmp_path / "src"
    done, warnings = assets.install(RECIPE, root, [download_zip])
    assert [d.asset.name for d in done] == ["flame"] and done[0].trust == "first-use"
    assert "no published checksum" in warnings[0]
    flame = next(s for s in assets.check(RECIPE, root) if s.asset.name == "flame")
    assert flame.status == "ok" and flame.trust == "first-use"
    registry = json.loads((root / assets.REGISTRY).read_text())
    assert (
        registry["installed"]["flame"]["sha256"]
        == hashlib.sha256((root / ASSETS["flame"].path).read_bytes()).hexdigest()
    )
    # later swapped for another (valid) file: caught by the recorded sha256
    (root / ASSETS["flame"].path).write_bytes(pickle.dumps(flame_dict(), protocol=4))
    flame = next(s for s in assets.check(RECIPE, root) if s.asset.name == "flame")
    assert flame.status == "checksum-mismatch"


def test_install_identifies_by_structure_and_refuses_bad_files(tmp_path):
    root = tmp_path / "src"
    mat = tmp_path / "renamed_download.mat"
    scipy.io.savemat(
        mat,
        bfm_variables(tl_rows=10),
        do_compression=True,
    )
    (done,), _ = assets.install(RECIPE, root, [mat])
    assert done.asset.name == "bfm" and (root / ASSETS["bfm"].path).is_file()
    login = write(tmp_path / "flame2023_no_jaw.pkl", b"<!DOCTYPE html><title>FLAME login</title>")
    with pytest.raises(EnvbuilderError, match="is none of fixture-assets's assets") as info:
        assets.install(RECIPE, root, [login])
    assert "flame: html-page" in info.value.hint
    assert not (root / ASSETS["flame"].path).exists()


def test_stubs_are_valid_and_marked(tmp_path):
    root = tmp_path / "src"
    written, skipped = assets.stub(RECIPE, root, Path(sys.executable))
    assert sorted(written) == ["bfm", "flame", "smplx"]
    assert any(s.startswith("parsing: no stand-in for a torch-checkpoint") for s in skipped)
    statuses = {s.asset.name: s for s in assets.check(RECIPE, root)}
    for name in written:
        assert statuses[name].status == "ok" and statuses[name].stub, statuses[name].detail


# --- fetch: a local HTTP server that misbehaves ---------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Handler(http.server.BaseHTTPRequestHandler):
    drops: dict[str, int] = {}

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        if self.path == "/login":
            body = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")  # lies about its type
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/busy" and Handler.drops.setdefault("busy", 0) < 1:
            Handler.drops["busy"] += 1
            self.send_response(503)
            self.end_headers()
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        self.end_headers()
        body = PAYLOAD[start:]
        if self.path == "/drop" and Handler.drops.setdefault("drop", 0) < 2:
            Handler.drops["drop"] += 1
            self.wfile.write(body[: len(body) // 3])  # then hang up mid-file
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    Handler.drops = {}
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


def test_download_checks_sha256_and_progress(server, tmp_path):
    seen = []
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    out = download(
        f"{server}/file",
        tmp_path / "w.bin",
        sha256=digest,
        progress=lambda done, total: seen.append((done, total)),
        backoff=0,
    )
    assert out.read_bytes() == PAYLOAD and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    with pytest.raises(DownloadError, match="sha256 is"):
        download(f"{server}/file", tmp_path / "bad.bin", sha256="0" * 64, backoff=0)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()


def test_download_resumes_after_the_connection_drops(server, tmp_path):
    out = download(f"{server}/drop", tmp_path / "d.bin", size=len(PAYLOAD), backoff=0)
    assert out.read_bytes() == PAYLOAD
    assert Handler.drops["drop"] == 2 and not (tmp_path / "d.bin.part").exists()


def test_download_retries_a_busy_server(server, tmp_path):
    assert download(f"{server}/busy", tmp_path / "b.bin", backoff=0).read_bytes() == PAYLOAD


def test_download_refuses_an_html_page_served_as_200(server, tmp_path):
    with pytest.raises(DownloadError, match="HTML page"):
        download(f"{server}/login", tmp_path / "model.pth", backoff=0)
    assert not (tmp_path / "model.pth").exists() and not (tmp_path / "model.pth.part").exists()


def test_download_gives_up_with_a_resumable_partial(tmp_path):
    with pytest.raises(DownloadError, match="after 2 attempts") as info:
        download("http://127.0.0.1:1/nothing", tmp_path / "n.bin", retries=1, backoff=0, timeout=2)
    assert "resumes" in info.value.hint


# --- CLI -------------------------------------------------------------------------------------------------------


def test_assets_cli(tmp_path):
    args = ["--recipes", str(FIXTURES), "--root", str(tmp_path / "src")]
    missing = run_cli("assets", "fixture-assets", *args, "--json")
    assert missing.returncode == 3
    data = json.loads(missing.stdout)
    flame = next(a for a in data["assets"] if a["name"] == "flame")
    assert flame["status"] == "missing" and flame["register"].startswith("https://flame.is.tue.mpg.de")
    assert flame["path"].endswith("data/flame/flame2023_no_jaw.pkl")
    text = run_cli("assets", "fixture-assets", *args)
    assert "blocked:" in text.stdout and "train" in text.stdout
    stub = run_cli(
        "assets",
        "stub",
        "fixture-assets",
        "--recipes",
        str(FIXTURES),
        "--dest",
        str(tmp_path / "src"),
        "--python",
        sys.executable,
        "--json",
    )
    assert stub.returncode == 0, stub.stderr
    after = json.loads(run_cli("assets", "fixture-assets", *args, "--json").stdout)
    assert {a["name"]: a["stub"] for a in after["assets"]}["flame"] is True
    bad = tmp_path / "flame2023_no_jaw.pkl"
    bad.write_bytes(b"")
    refused = run_cli("assets", "install", "fixture-assets", str(bad), *args)
    assert refused.returncode == 1 and "flame: empty" in refused.stderr


def test_assets_fetch_cli(server, tmp_path):
    data = tmp_path / "data" / "recipes"
    data.mkdir(parents=True)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    (data / "free.yaml").write_text(
        "name: free\nsummary: x\nsource: {path: .}\npython: '>=3.8'\ntorch: {cu130: {torch: '>=2.11'}}\n"
        f"assets:\n  - {{name: blob, path: data/blob.bin, kind: file, gated: false, source: test, url: '{server}/drop', sha256: {digest}}}\n"
        "  - {name: model, path: data/m.pkl, kind: flame-pkl, gated: true, source: s, register: r}\n"
    )
    root = tmp_path / "src"
    root.mkdir()
    result = run_cli("assets", "fetch", "free", "--recipes", str(tmp_path / "data"), "--root", str(root), "--json")
    assert result.returncode == 3  # the gated one is still missing
    assert {r["name"]: r["result"] for r in json.loads(result.stdout)} == {
        "blob": "downloaded",
        "model": "skipped: gated, download by hand",
    }
    assert (root / "data/blob.bin").read_bytes() == PAYLOAD


def test_the_wrong_flame_version_is_refused(tmp_path):
    """FLAME 2023 with jaw where the no-jaw model belongs: same structure, told apart by name."""
    with_jaw = write(tmp_path / "dl" / "flame2023.pkl", pickle.dumps(flame_dict(), protocol=2))
    with pytest.raises(EnvbuilderError) as info:
        assets.install(RECIPE, tmp_path / "src", [with_jaw])
    assert (
        "wrong FLAME version: flame2023.pkl is FLAME 2023 (with jaw); this method needs FLAME 2023 without jaw"
        in info.value.hint
    )
    renamed = write(tmp_path / "dl" / "model.pkl", pickle.dumps(flame_dict(), protocol=2))
    with pytest.raises(EnvbuilderError, match="none of"):
        assets.install(RECIPE, tmp_path / "src", [renamed])
