"""Small method trees for the `envbuilder new` tests, written here (no upstream text): extension
stand-ins with the interfaces envbuilder's fingerprints look at, and a local PEP 503 index."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

from helpers import git, make_repo

# --- a rasterizer stand-in: the interface probe_rasterizer.py uses, nothing else --------------

SETTINGS_FIELDS = (  # the names probe_rasterizer.py passes, in alphabetical order
    "bg: object",
    "campos: object",
    "debug: bool",
    "image_height: int",
    "image_width: int",
    "prefiltered: bool",
    "projmatrix: object",
    "scale_modifier: float",
    "sh_degree: int",
    "tanfovx: float",
    "tanfovy: float",
    "viewmatrix: object",
)


def rasterizer_files(*, extra_field: str | None = None, with_cstdint: bool = False) -> dict[str, str]:
    fields = "\n".join(f"    {f}" for f in (*SETTINGS_FIELDS, *([extra_field] if extra_field else [])))
    impl_h = (
        "#pragma once\n#include <vector>\n"
        + ("#include <cstdint>\n" if with_cstdint else "")
        + ("struct Buffers { uint32_t* tiles; std::uintptr_t base; };\n")
    )
    return {
        "setup.py": (  # written for these tests: sources listed by a loop, alphabetically
            "from pathlib import Path\n"
            "from setuptools import setup\n"
            "from torch.utils.cpp_extension import BuildExtension, CUDAExtension\n"
            "\n"
            "SOURCES = ['cuda_rasterizer/backward.cu', 'cuda_rasterizer/forward.cu',\n"
            "           'cuda_rasterizer/rasterizer_impl.cu', 'ext.cpp', 'rasterize_points.cu']\n"
            "GLM = str(Path(__file__).resolve().parent / 'third_party' / 'glm')\n"
            "kernels = CUDAExtension(name='diff_gaussian_rasterization._C', sources=[s for s in SOURCES],\n"
            "                        extra_compile_args={'nvcc': ['-I' + GLM]})\n"
            "setup(name='diff_gaussian_rasterization', packages=['diff_gaussian_rasterization'],\n"
            "      ext_modules=[kernels], cmdclass={'build_ext': BuildExtension})\n"
        ),
        "cuda_rasterizer/rasterizer_impl.h": impl_h,
        "cuda_rasterizer/rasterizer_impl.cu": '#include "rasterizer_impl.h"\n__global__ void k() {}\n',
        "cuda_rasterizer/forward.cu": "__global__ void fwd() {}\n",
        "cuda_rasterizer/backward.cu": "__global__ void bwd() {}\n",
        "rasterize_points.cu": "int points() { return 0; }\n",
        "ext.cpp": '#include <torch/extension.h>\nPYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("rasterize", &points); }\n',
        "diff_gaussian_rasterization/__init__.py": (
            "from typing import NamedTuple\n\n\n"
            f"class GaussianRasterizationSettings(NamedTuple):\n{fields}\n\n\n"
            "class GaussianRasterizer:\n"
            "    def __init__(self, raster_settings):\n"
            "        self.raster_settings = raster_settings\n\n"
            "    def forward(self, means3D, means2D, opacities, shs=None, colors_precomp=None, scales=None,\n"
            "                rotations=None, cov3D_precomp=None):\n"
            "        return None\n"
        ),
    }


def knn_files(*, with_cfloat: bool = False) -> dict[str, str]:
    return {
        "setup.py": (
            "from setuptools import setup\n"
            "from torch.utils.cpp_extension import BuildExtension, CUDAExtension\n"
            "knn = CUDAExtension(name='simple_knn._C', sources=['ext.cpp', 'simple_knn.cu', 'spatial.cu'])\n"
            "setup(name='simple_knn', ext_modules=[knn], cmdclass={'build_ext': BuildExtension})\n"
        ),
        "simple_knn.cu": "#include <vector>\n"
        + ("#include <cfloat>\n" if with_cfloat else "")
        + "float far() { return FLT_MAX; }\n",
        "spatial.cu": '#include "spatial.h"\n',
        "spatial.h": "#include <torch/extension.h>\ntorch::Tensor distCUDA2(const torch::Tensor& points);\n",
        "ext.cpp": '#include "spatial.h"\nPYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("distCUDA2", &distCUDA2); }\n',
    }


def commit_all(path: Path, message: str = "update") -> str:
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", message, cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def add_submodule(repo: Path, url: str, path: str) -> None:
    git("submodule", "add", "-q", url, path, cwd=repo)


def rasterizer_repo(base: Path) -> Path:
    """A rasterizer repository with its own submodule (third_party/glm), as the forks have."""
    glm = base / "glm"
    make_repo(glm, {"glm/glm.hpp": "#pragma once\n"})
    ras = base / "rasterizer"
    make_repo(ras, rasterizer_files())
    add_submodule(ras, glm.as_uri(), "third_party/glm")
    commit_all(ras, "glm")
    return ras


# --- a PEP 503 index on 127.0.0.1 ----------------------------------------------------------------


def write_index(root: Path, projects: dict[str, list[str]]) -> Path:
    """root/simple/<project>/index.html listing the given file names (empty files next to it)."""
    simple = root / "simple"
    for project, files in projects.items():
        d = simple / project
        d.mkdir(parents=True, exist_ok=True)
        links = "\n".join(f'<a href="{name}#sha256=00">{name}</a><br/>' for name in files)
        (d / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}\n</body></html>\n")
        for name in files:
            (d / name).write_bytes(b"")
    return simple


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1 (a real server: real sockets, real 404s)."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


WHEEL = "manylinux_2_17_x86_64.manylinux2014_x86_64"
INDEX = {
    # an old pin without a cp312 wheel; 0.3.0 is the first that has one
    "meshcubes": [
        "meshcubes-0.2.0-cp38-cp38-" + WHEEL + ".whl",
        "meshcubes-0.2.0.tar.gz",
        "meshcubes-0.3.0-cp312-cp312-" + WHEEL + ".whl",
        "meshcubes-0.4.0-cp312-cp312-" + WHEEL + ".whl",
    ],
    # pure Python wheels: always fine
    "plyreader": ["plyreader-1.0.0-py3-none-any.whl"],
    "tqdm": ["tqdm-4.66.0-py3-none-any.whl"],
    "numpy": ["numpy-1.22.0-cp310-cp310-" + WHEEL + ".whl", "numpy-1.26.0-cp312-cp312-" + WHEEL + ".whl"],
    "opencv-python-headless": ["opencv_python_headless-4.9.0.80-cp37-abi3-" + WHEEL + ".whl"],
    # only an sdist, ever
    "speechfeat": ["speechfeat-0.6.tar.gz"],
    "mmengine-lite": ["mmengine_lite-0.10.7-py3-none-any.whl"],
    "packaging": ["packaging-24.0-py3-none-any.whl"],
    "tensorflow": ["tensorflow-2.16.1-cp312-cp312-" + WHEEL + ".whl"],
    "scipy": ["scipy-1.13.1-cp312-cp312-" + WHEEL + ".whl"],
    "chumpy": ["chumpy-0.70.tar.gz"],
}
