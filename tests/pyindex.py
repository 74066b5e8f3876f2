"""A PEP 503 package index on 127.0.0.1 holding tiny pure-Python wheels and sdists that the test
builds itself (zip/tar written here: METADATA, WHEEL, RECORD; an in-tree PEP 517 backend for
sdists, so building one needs nothing from outside). For lock, bundle and install tests.

    with PyIndex(tmp_path / "index") as index:
        index.publish("pkg", "1.0", requires=["dep>=1"])
        index.url                      # http://127.0.0.1:PORT/simple
        index.replace("pkg", "1.0")    # same file name, other bytes: "changed on the index"
        index.requests                 # paths served, to count downloads

PyIndex(root, json_api=True) also answers uv's PEP 691 JSON request, with PEP 700 upload times.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.tags import parse_tag
from packaging.utils import canonicalize_name

EPOCH = (2020, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same inputs make the same bytes
UPLOAD_TIME = "2020-01-01T00:00:00.000000Z"  # every file's PEP 700 upload time on a json_api index
JSON_PAGE = "application/vnd.pypi.simple.v1+json"

TINY_BACKEND = '''"""A PEP 517 backend in 40 lines, for test sdists: zips the package into a wheel."""
import base64, hashlib, os, zipfile

NAME, VERSION, DIST = {name!r}, {version!r}, {dist!r}
METADATA = {metadata!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    info = os.path.join(directory, f"{{DIST}}-{{VERSION}}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(METADATA)
    return os.path.basename(info)


def build_wheel(directory, config_settings=None, metadata_directory=None):
    filename = f"{{DIST}}-{{VERSION}}-py3-none-any.whl"
    files = {{f"{{DIST}}/__init__.py": open(os.path.join(DIST, "__init__.py"), "rb").read(),
             f"{{DIST}}-{{VERSION}}.dist-info/METADATA": METADATA.encode(),
             f"{{DIST}}-{{VERSION}}.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}}
    record = "".join(f"{{n}},sha256={{base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()}},{{len(d)}}\\n" for n, d in files.items())
    files[f"{{DIST}}-{{VERSION}}.dist-info/RECORD"] = (record + f"{{DIST}}-{{VERSION}}.dist-info/RECORD,,\\n").encode()
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as zf:
        for n, d in files.items():
            zf.writestr(zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0)), d)
    return filename
'''


def _dist(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def metadata(name: str, version: str, requires: list[str] = (), requires_python: str | None = None) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n"


def build_wheel(
    out: Path,
    name: str,
    version: str,
    *,
    requires: list[str] = (),
    requires_python: str | None = None,
    tag: str = "py3-none-any",
    payload: str = "",
) -> Path:
    """A pure-Python wheel: module <name>/__init__.py holding __version__ (and payload).
    `tag` is the file name's tag part, compressed tag sets included, as PyPI's binary wheels
    have them (cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64): WHEEL lists each tag."""
    dist = _dist(name)
    info = f"{dist}-{version}.dist-info"
    tags = "".join(f"Tag: {t}\n" for t in sorted(map(str, parse_tag(tag))))
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n{payload}".encode(),
        f"{info}/METADATA": metadata(name, version, list(requires), requires_python).encode(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: pyindex\nRoot-Is-Purelib: true\n{tags}".encode(),
    }
    record = "".join(
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
        for n, d in files.items()
    )
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(zipfile.ZipInfo(n, EPOCH), d)
    return path


def build_sdist(out: Path, name: str, version: str, *, requires: list[str] = (), payload: str = "") -> Path:
    """An sdist with PKG-INFO and an in-tree build backend: installers build it with nothing else."""
    dist = _dist(name)
    meta = metadata(name, version, list(requires))
    root = f"{dist}-{version}"
    files = {
        f"{root}/PKG-INFO": meta.encode(),
        f"{root}/pyproject.toml": (
            b'[build-system]\nrequires = []\nbuild-backend = "tiny_backend"\nbackend-path = ["."]\n'
        ),
        f"{root}/tiny_backend.py": TINY_BACKEND.format(name=name, version=version, dist=dist, metadata=meta).encode(),
        f"{root}/{dist}/__init__.py": f"__version__ = {version!r}\n{payload}".encode(),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{root}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for n, d in files.items():
            info = tarfile.TarInfo(n)
            info.size, info.mtime, info.mode = len(d), 1577836800, 0o644
            tar.addfile(info, io.BytesIO(d))
    path.write_bytes(buffer.getvalue())
    return path


def build_setup_py_sdist(out: Path, name: str, version: str, *, before_setup: str = "") -> Path:
    """An sdist with only a setup.py (python-speech-features 0.6 is one): building it needs
    setuptools, which an isolated build fetches from the index. `before_setup` is code its
    setup.py runs first (a check of what the build finds, as pysdf's find_eigen)."""
    dist = _dist(name)
    root = f"{dist}-{version}"
    setup = f"{before_setup}\nfrom setuptools import setup\nsetup(name={name!r}, version={version!r}, py_modules=[{dist!r}])\n"
    files = {
        f"{root}/PKG-INFO": metadata(name, version).encode(),
        f"{root}/setup.py": setup.encode(),
        f"{root}/{dist}.py": f"__version__ = {version!r}\n".encode(),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{root}.tar.gz"
    with tarfile.open(path, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for n, d in files.items():
            info = tarfile.TarInfo(n)
            info.size, info.mtime, info.mode = len(d), 1577836800, 0o644
            tar.addfile(info, io.BytesIO(d))
    return path


@dataclass
class PyIndex:
    """Serve <root>/simple/<project>/ (PEP 503 HTML) and <root>/files/ on 127.0.0.1."""

    root: Path
    page_hashes: bool = True  # put #sha256= on links, as PyPI does
    lie_about_hashes: bool = False  # serve wrong #sha256= values, as the PyTorch index has done
    json_api: bool = False  # also serve PEP 691 JSON pages with PEP 700 upload times, as PyPI does
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        (self.root / "simple").mkdir(parents=True, exist_ok=True)
        self._server: ThreadingHTTPServer | None = None

    # --- publishing --------------------------------------------------------------------------

    def publish(self, name: str, version: str, *, sdist_only: bool = False, **kwargs: object) -> Path:
        if sdist_only:
            path = build_sdist(self.root / "files", name, version, **kwargs)  # type: ignore[arg-type]
        else:
            path = build_wheel(self.root / "files", name, version, **kwargs)  # type: ignore[arg-type]
        self._write_page(name)
        return path

    def replace(self, name: str, version: str, **kwargs: object) -> Path:
        """The same file name with other bytes, as when an index re-uploads a file."""
        return self.publish(name, version, payload="# rebuilt after the lock was made\n", **kwargs)

    def add_file(self, path: Path, name: str) -> None:
        (self.root / "files" / path.name).write_bytes(path.read_bytes())
        self._write_page(name)

    def _write_page(self, name: str) -> None:
        project = canonicalize_name(name)
        dist = _dist(name)
        links, files = [], []
        for f in sorted((self.root / "files").iterdir()):
            if not (f.name.startswith(f"{dist}-") and f.name[len(dist) + 1 : len(dist) + 2].isdigit()):
                continue
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            if self.lie_about_hashes:
                digest = hashlib.sha256(digest.encode()).hexdigest()
            fragment = f"#sha256={digest}" if self.page_hashes else ""
            links.append(f'<a href="../../files/{html.escape(f.name)}{fragment}">{html.escape(f.name)}</a><br>')
            hashes = {"sha256": digest} if self.page_hashes else {}
            size = f.stat().st_size
            url = f"../../files/{f.name}"
            files.append({"filename": f.name, "url": url, "hashes": hashes, "size": size, "upload-time": UPLOAD_TIME})
        page = self.root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
        (page / "index.json").write_text(json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": files}))
        projects = sorted(p.name for p in (self.root / "simple").iterdir() if p.is_dir())
        (self.root / "simple" / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n"
            + "\n".join(f'<a href="{p}/">{p}</a><br>' for p in projects)
            + "\n</body></html>\n"
        )

    # --- serving -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "use the index as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple"

    def file_url(self, filename: str) -> str:
        return self.url.removesuffix("/simple") + f"/files/{filename}"

    def downloads(self, filename: str) -> int:
        return sum(1 for r in self.requests if r.endswith(f"/files/{filename}"))

    def __enter__(self) -> PyIndex:
        root, log, json_api = str(self.root), self.requests, self.json_api

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=root, **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                log.append(path)
                page = Path(root) / path.lstrip("/") / "index.json"
                if json_api and JSON_PAGE in self.headers.get("Accept", "") and page.is_file():
                    body = page.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", JSON_PAGE)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

            def end_headers(self) -> None:
                # a live index: pages must be revalidated, so a new release is seen at once
                self.send_header("Cache-Control", "max-age=0, must-revalidate")
                super().end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # tests stay quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
