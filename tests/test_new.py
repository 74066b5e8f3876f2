"""`envbuilder new` end to end on method repositories made here: real git (nested submodules by
file://, a gitlink its remote lacks), a local PEP 503 index on 127.0.0.1, and the written folder
loaded back with the strict loader and planned."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from newtrees import INDEX, add_submodule, commit_all, knn_files, rasterizer_files, rasterizer_repo, serve, write_index

from envbuilder.errors import InputError
from envbuilder.new.command import new
from envbuilder.new.index import SimpleIndex
from envbuilder.plan import Options, make_plan
from envbuilder.recipe.catalog import Catalog

from conftest import has_git
from helpers import git, host, make_repo, run_cli

pytestmark = pytest.mark.skipif(not has_git(), reason="git is not installed: new reads repositories with it")


def unwrapped(path: Path) -> str:
    """A written file with its wrapped comment lines joined again."""
    return re.sub(r"\s*\n\s*#\s*", " ", path.read_text())


def files_of(prefix: str, files: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}/{k}": v for k, v in files.items()}


@pytest.fixture
def index(tmp_path):
    simple = write_index(tmp_path / "pypi", INDEX)
    with serve(simple.parent) as url:
        yield SimpleIndex(url + "/simple/", cache=tmp_path / "index-cache")


def loaded(out: Path, name: str):
    """The written folder as `--recipes DIR` reads it, and a plan for sm_120 (nothing runs)."""
    recipe = Catalog.default([out]).recipe(name)
    plan = make_plan(recipe, host(), Options(arch="12.0", prefix=out / "env", plan_only=True))
    return recipe, plan


def knn_ext_repo(base: Path) -> Path:
    """A CUDA extension that only the README names: `git clone … && cd … && pip install .`."""
    repo = base / "knn-ext"
    make_repo(
        repo,
        {
            "setup.py": (
                "from setuptools import setup\n"
                "from torch.utils.cpp_extension import CUDAExtension\n"
                "setup(name='ballquery', ext_modules=[CUDAExtension('ballquery._C', ['ball.cu'])])\n"
            ),
            "ball.cu": "#include <vector>\nstruct Hit { uint32_t id; };\n",
        },
    )
    return repo


def method_repo(base: Path) -> tuple[Path, str]:
    ras = rasterizer_repo(base / "up")
    knn = knn_ext_repo(base / "up")
    method = base / "demo-splat"
    files = {
        "README.md": textwrap.dedent(f"""\
            # Demo Splat: a method envbuilder has never seen

            ## Installation
            ```bash
            git clone https://github.com/someone/demo-splat.git --recursive
            cd demo-splat
            conda env create -f environment.yml
            pip install -r requirements.txt
            pip install ./submodules/rasterizer
            pip install "git+https://github.com/facebookresearch/pytorch3d.git"
            git clone {knn.as_uri()} && cd knn-ext && pip install .
            ```
            """),
        "environment.yml": textwrap.dedent("""\
            name: demo
            dependencies:
              - python=3.7.13
              - pytorch=1.12.1
              - cudatoolkit=11.3
              - pip:
                - ./vendor/simple-knn
                - meshcubes==0.2.0
                - opencv-python
                - tensorflow-gpu==2.8.0
            """),
        "requirements.txt": "torch==1.13.1\ntqdm\nmmcv==1.6.0\nspeechfeat\n",
        "train.py": textwrap.dedent("""\
            import mmcv
            import numpy as np
            import cv2
            from diff_gaussian_rasterization import GaussianRasterizer
            from simple_knn._C import distCUDA2
            from utils.ckpt import restore
            cfg = mmcv.Config.fromfile("configs/base.py")
            """),
        "utils/ckpt.py": "import torch\n\ndef restore(path):\n    (params, first_iter) = torch.load(path)\n    return params\n",
        "scene/deformation.py": "from tkinter import W\nimport torch\n",
        "face/convert.py": "from scipy.io import loadmat\nmodel = loadmat('3DMM/01_MorphableModel.mat')\n",
        "face/3DMM/.keep": "",
        "encoder/backend.py": textwrap.dedent("""\
            import os
            from torch.utils.cpp_extension import load
            _src = os.path.dirname(os.path.abspath(__file__))
            _backend = load(name="_hash_encoder", extra_cflags=["-O3", "-std=c++14"],
                            sources=[os.path.join(_src, "src", f) for f in ["hash.cu", "bind.cpp"]])
            """),
        "encoder/src/hash.cu": "#include <cuda_runtime.h>\n__device__ float big() { return FLT_MAX; }\n",
        "encoder/src/bind.cpp": "#include <torch/extension.h>\n",
        **files_of("vendor/simple-knn", knn_files(with_cfloat=True)),  # already has the fix
    }
    make_repo(method, files)
    add_submodule(method, ras.as_uri(), "submodules/rasterizer")
    git("submodule", "update", "--init", "--recursive", "-q", cwd=method)
    commit = commit_all(method, "add the rasterizer")
    return method, commit


def test_new_on_a_method_it_has_never_seen(tmp_path, index):
    method, commit = method_repo(tmp_path)
    out = tmp_path / "out"
    result = new(method.as_uri(), output=out, index=index)
    d = result.draft
    assert d.name == "demo-splat" and d.source == {"git": method.as_uri(), "commit": commit, "branch": "main"}
    # nested submodules were read at their gitlinks
    assert [s["path"] for s in d.submodules] == ["submodules/rasterizer", "submodules/rasterizer/third_party/glm"]
    assert all(s["status"] == "ok" for s in d.submodules)

    ext = {e.name: e for e in d.extensions}
    assert set(ext) == {"diff-gaussian-rasterization", "simple-knn", "pytorch3d", "demo-splat-ballquery"}
    assert (
        ext["diff-gaussian-rasterization"].shared and ext["diff-gaussian-rasterization"].path == "submodules/rasterizer"
    )
    assert ext["simple-knn"].shared and ext["simple-knn"].path == "vendor/simple-knn"
    assert any("cfloat: already fixed" in n for n in ext["simple-knn"].notes)  # the shared patch would do nothing
    assert ext["pytorch3d"].shared and ext["pytorch3d"].path is None
    ball = ext["demo-splat-ballquery"]  # README-only: its own repository, pinned to a full commit
    knn_head = git("rev-parse", "HEAD", cwd=tmp_path / "up" / "knn-ext")
    assert not ball.shared and ball.source == {
        "git": (tmp_path / "up" / "knn-ext").as_uri(),
        "commit": knn_head,
        "branch": "main",
    }
    assert [(p.name, p.files) for p in ball.patches] == [("cstdint", ["ball.cu"])]

    patches = {p.name: p.files for p in d.patches}
    assert patches == {
        "cxx-standard": ["encoder/backend.py"],  # the JIT-only backend forces -std=c++14
        "cfloat": ["encoder/src/hash.cu"],
        "mmcv-config-mmengine": ["train.py"],
        "drop-tkinter-import": None,  # the patch's own file list fits
        "torch-load-trusted": ["utils/ckpt.py"],
    }
    assert [j["name"] for j in d.jit] == ["_hash_encoder"]
    assert any("encoder/backend.py:4 compiles _hash_encoder with torch's JIT" in t for t in d.todos)

    reqs = {r.text: r for r in d.requirements}
    assert "meshcubes==0.3.0" in reqs and "first release that has one" in reqs["meshcubes==0.3.0"].why
    assert {
        "opencv-python-headless",
        "tensorflow>=2.16",
        "mmengine-lite==0.10.7",
        "packaging",
        "tqdm",
        "speechfeat",
    } <= set(reqs)
    assert "found by import: train.py:2" in reqs["numpy"].why
    assert not any(r.startswith(("torch", "pytorch", "cudatoolkit", "mmcv")) for r in reqs)
    dropped = " ".join(t for t, _ in d.dropped)
    assert "torch==1.13.1" in dropped and "pytorch==1.12.1" in dropped and "cudatoolkit==11.3" in dropped
    assert any("speechfeat" in t and "only source distributions" in t for t in d.todos)

    assert [(a.name, a.path, a.kind) for a in d.assets] == [("bfm2009", "face/3DMM/01_MorphableModel.mat", "bfm-mat")]
    assert "3.7.13" in d.python_why and d.python == "3.12"

    # the folder loads with the strict loader and plans
    recipe, plan = loaded(out, "demo-splat")
    assert [e.name for e in recipe.extensions] == [
        "diff-gaussian-rasterization",
        "simple-knn",
        "pytorch3d",
        "demo-splat-ballquery",
    ]
    assert (out / "extensions/demo-splat-ballquery/extension.yaml").is_file()
    assert not (out / "extensions/simple-knn").exists()  # a shared one is not copied
    assert plan.step("extensions").inputs and "12.0" in plan.torch_cuda_arch_list
    text = result.recipe_file.read_text()
    assert "# TODO (also printed by envbuilder new):" in text and "rule raise-to-wheel" in text


def test_vendored_fork_with_another_api_gets_its_own_entry(tmp_path, index):
    method = tmp_path / "forked"
    make_repo(
        method,
        {
            "README.md": "# Forked\n\n## Install\n```\npip install ./third/rast-fork\npip install ./third/tidy-op\n```\n",
            **files_of("third/rast-fork", rasterizer_files(extra_field="kernel_size: float")),
            # an extension the tree already fixed: <cstdint> is included, so no patch is attached
            "third/tidy-op/setup.py": (
                "from setuptools import setup\nfrom torch.utils.cpp_extension import CUDAExtension\n"
                "setup(name='tidy_op', ext_modules=[CUDAExtension('tidy_op._C', ['tidy.cu'])])\n"
            ),
            "third/tidy-op/tidy.cu": "#include <cstdint>\n#include <cfloat>\nuint32_t n; float m = FLT_MAX;\n",
            "render.py": "from diff_gaussian_rasterization import GaussianRasterizer\nimport tidy_op\n",
            # the checkpoint load already passes weights_only=False: torch-load-trusted would add it twice
            "train.py": "import torch\n(model, first_iter) = torch.load(path, weights_only=False)\n",
        },
    )
    out = tmp_path / "out"
    d = new(str(method), output=out, index=index).draft
    ext = {e.name: e for e in d.extensions}
    assert set(ext) == {"forked-diff-gaussian-rasterization", "forked-tidy-op"}
    fork = ext["forked-diff-gaussian-rasterization"]
    assert not fork.shared and fork.import_name == "diff_gaussian_rasterization._C"
    assert fork.fingerprint["failed"] == [
        "GaussianRasterizationSettings requires kernel_size, which the shared extension's probe does not pass"
    ]
    assert [(p.name, p.files) for p in fork.patches] == [("cstdint", ["cuda_rasterizer/rasterizer_impl.h"])]
    assert ext["forked-tidy-op"].patches == []
    assert d.patches == []  # nothing the tree already fixed
    recipe, _ = loaded(out, "forked")
    fork_ext = recipe.extensions[0].extension
    assert fork_ext.name == "forked-diff-gaussian-rasterization" and fork_ext.probe is None
    assert [u.name for u in fork_ext.patches] == ["cstdint"]
    assert "looks like the shared diff-gaussian-rasterization" in unwrapped(out / "recipes/forked.yaml")


def test_a_repository_without_extensions_is_python_plus_torch(tmp_path, index):
    method = tmp_path / "plainnet"
    make_repo(
        method,
        {
            "pyproject.toml": '[project]\nname = "plainnet"\nrequires-python = ">=3.8"\ndependencies = ["tqdm", "numpy==1.22.0"]\n',
            "plainnet/__init__.py": "import torch\nimport torchvision\nimport tqdm\n",
        },
    )
    out = tmp_path / "out"
    d = new(method.as_uri(), output=out, index=index).draft
    assert d.extensions == [] and d.patches == []
    assert [r.text for r in d.requirements] == ["tqdm", "numpy==1.26.0"]
    assert d.torch_packages == ["torch", "torchvision"]
    recipe, plan = loaded(out, "plainnet")
    assert recipe.extensions == () and [r.text for r in recipe.requirements] == ["tqdm", "numpy==1.26.0"]
    assert any(r.startswith("torchvision") for r in plan.torch.requirements())


def test_plain_directory_source(tmp_path, index):
    method = tmp_path / "notgit"
    method.mkdir()
    (method / "requirements.txt").write_text("tqdm\n")
    out = tmp_path / "out"
    d = new(str(method), output=out, index=index).draft
    assert d.source == {"path": str(method)}
    recipe, _ = loaded(out, "notgit")
    assert recipe.source.path == method


def test_gitlink_the_remote_lacks_is_reported_never_replaced(tmp_path, index):
    sub = tmp_path / "up" / "kernels"
    make_repo(sub, {"README": "main"})
    git("checkout", "-q", "-b", "dev", cwd=sub)
    (sub / "README").write_text("dev")
    dev = commit_all(sub, "dev")
    git("checkout", "-q", "main", cwd=sub)
    main = git("rev-parse", "HEAD", cwd=sub)
    method = tmp_path / "lostlink"
    make_repo(method, {"train.py": "print('hi')\n"})
    (method / ".gitmodules").write_text(f'[submodule "kernels"]\n\tpath = submodules/kernels\n\turl = {sub.as_uri()}\n')
    ghost = "0123456789abcdef0123456789abcdef01234567"
    git("add", ".gitmodules", cwd=method)
    git("update-index", "--add", "--cacheinfo", f"160000,{ghost},submodules/kernels", cwd=method)
    git("commit", "-q", "-m", "a gitlink to a commit nobody has", cwd=method)  # not add -A: no checkout of it
    out = tmp_path / "out"
    d = new(method.as_uri(), output=out, index=index).draft
    (s,) = d.submodules
    assert s["status"] == "missing" and s["commit"] == ghost
    assert s["branches"] == {"dev": dev, "main": main} and s["read_from"] == f"main {main[:12]}"
    todo = next(t for t in d.todos if t.startswith("submodule submodules/kernels"))
    assert f"dev {dev[:12]}" in todo and f"main {main[:12]}" in todo and "does not replace a gitlink" in todo
    recipe, _ = loaded(out, "lostlink")
    assert recipe.source.fallbacks == ()  # suggested in a comment only
    text = (out / "recipes/lostlink.yaml").read_text()
    assert "  # fallbacks:" in text and f"main {main}" in unwrapped(out / "recipes/lostlink.yaml")


# --- bad input: a clear error, nothing written --------------------------------------------------


def test_url_that_is_not_a_repository(tmp_path, index):
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        new((tmp_path / "nothing-here").as_uri(), output=out, index=index)
    assert "is not a git repository" in err.value.message and "nothing was written" in err.value.hint
    assert not out.exists()


def test_commit_that_does_not_exist(tmp_path, index):
    method = tmp_path / "m"
    make_repo(method, {"a.py": "import os\n"})
    out = tmp_path / "out"
    for target in (method.as_uri(), str(method)):
        with pytest.raises(InputError) as err:
            new(target, commit="feedfacefeedfacefeedfacefeedfacefeedface", output=out, index=index)
        assert "commit feedfacefeedfacefeedfacefeedfacefeedface does not exist" in err.value.message
    assert not out.exists()


def test_setup_py_that_is_not_python(tmp_path, index):
    method = tmp_path / "py2"
    make_repo(method, {"ext/setup.py": "from setuptools import setup\nprint 'old'\n", "a.py": ""})
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        new(method.as_uri(), output=out, index=index)
    assert "ext/setup.py:2: not valid Python" in err.value.message
    assert not out.exists()


def test_existing_recipe_is_never_overwritten(tmp_path, index):
    method = tmp_path / "again"
    make_repo(method, {"a.py": "import os\n"})
    out = tmp_path / "out"
    new(method.as_uri(), output=out, index=index)
    before = (out / "recipes/again.yaml").read_bytes()
    with pytest.raises(InputError) as err:
        new(method.as_uri(), output=out, index=index)
    assert "does not overwrite" in err.value.message
    assert (out / "recipes/again.yaml").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["recipes"]  # no staging folder left behind


def test_short_commit_and_branch_resolve_to_full_hashes(tmp_path, index):
    method = tmp_path / "revs"
    first = make_repo(method, {"a.py": "import os\n"})
    (method / "b.py").write_text("import sys\n")
    commit_all(method, "second")
    git("branch", "old", first, cwd=method)
    d = new(method.as_uri(), commit=first[:9], output=tmp_path / "o1", index=index).draft
    assert d.source["commit"] == first and d.source["branch"] is None  # not the default branch's head
    d = new(method.as_uri(), commit="old", name="revs-old", output=tmp_path / "o2", index=index).draft
    assert d.source["commit"] == first


# --- the command line ---------------------------------------------------------------------------


def test_cli_new_then_plan(tmp_path):
    method, commit = method_repo(tmp_path)
    simple = write_index(tmp_path / "pypi", INDEX)
    out = tmp_path / "recipes-out"
    with serve(simple.parent) as url:
        env = {"ENVBUILDER_INDEX_URL": url + "/simple/"}
        done = run_cli("new", method.as_uri(), "--output", str(out), "--json", env=env)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["recipe"] == "demo-splat" and data["draft"]["source"]["commit"] == commit
        assert data["todos"] == data["draft"]["todos"] and data["todos"]
        text = run_cli("new", method.as_uri(), "--name", "demo-text", "--output", str(out), env=env)
        assert text.returncode == 0 and "TODO" in text.stdout and "next: envbuilder plan demo-text" in text.stdout
    plan = run_cli("plan", "demo-splat", "--recipes", str(out), "--arch", "12.0", "--json")
    assert plan.returncode == 0, plan.stderr
    steps = {s["name"]: s for s in json.loads(plan.stdout)["steps"]}
    assert [e["name"] for e in steps["extensions"]["inputs"]["extensions"]] == [
        "diff-gaussian-rasterization",
        "simple-knn",
        "pytorch3d",
        "demo-splat-ballquery",
    ]


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    bad = run_cli("new", (tmp_path / "no-such-repo").as_uri(), "--output", str(out), "--json")
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["ok"] is False and "is not a git repository" in bad.stderr
    assert not out.exists()
