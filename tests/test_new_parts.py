"""The parts of `envbuilder new`, each on files written here: setup.py shapes read with ast (never
run), JIT loaders, README install blocks, environment.yml's pip: section, import guards, pin
rules with a real PEP 503 index on 127.0.0.1, and the extension fingerprints."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from newtrees import INDEX, knn_files, rasterizer_files, serve, write_index
from packaging.requirements import Requirement
from packaging.version import Version

from envbuilder.errors import InputError
from envbuilder.new import declared, fingerprint, imports, jit, pins, readme, setup_py
from envbuilder.new.index import IndexUnavailable, SimpleIndex, Target, releases


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


# --- setup.py shapes ----------------------------------------------------------------------------


def test_setup_plain_list_and_flags(tmp_path):
    write(
        tmp_path,
        {
            "ext/setup.py": """
        from setuptools import setup
        from torch.utils.cpp_extension import CUDAExtension, BuildExtension
        setup(name="dotkernel", ext_modules=[CUDAExtension("dotkernel._C", ["a.cu", "b.cpp"],
              extra_compile_args={"cxx": ["-O2", "-std=c++14"], "nvcc": ["-std=c++14"]})],
              install_requires=["numpy<2"], cmdclass={"build_ext": BuildExtension})
    """
        },
    )
    info = setup_py.analyse(tmp_path / "ext/setup.py", tmp_path)
    assert info.package == "dotkernel" and info.directory == "ext" and info.install_requires == ("numpy<2",)
    (ext,) = info.extensions
    assert (ext.kind, ext.name, ext.sources) == ("CUDAExtension", "dotkernel._C", ("a.cu", "b.cpp"))
    assert dict(ext.flags) == {"cxx": ("-O2", "-std=c++14"), "nvcc": ("-std=c++14",)}


def test_setup_sources_from_glob_and_include_dirs_from_os_path(tmp_path):
    write(
        tmp_path,
        {
            "k/src/one.cu": "",
            "k/src/two.cu": "",
            "k/src/bind.cpp": "",
            "k/src/skip.txt": "",
            "k/setup.py": """
            import glob, os
            from setuptools import setup
            from torch.utils.cpp_extension import CUDAExtension
            ROOT = os.path.dirname(os.path.abspath(__file__))
            sources = glob.glob(os.path.join(ROOT, "src", "*.cu")) + glob.glob("src/*.cpp")
            setup(name="k", ext_modules=[CUDAExtension(name="k_cuda", sources=sources,
                  include_dirs=[os.path.join(ROOT, "third_party", "glm")])])
        """,
        },
    )
    (ext,) = setup_py.analyse(tmp_path / "k/setup.py", tmp_path).extensions
    assert sorted(ext.sources) == ["src/bind.cpp", "src/one.cu", "src/two.cu"]
    assert ext.include_dirs == ("third_party/glm",)
    assert not ext.unknown


def test_setup_sources_from_a_loop(tmp_path):
    write(
        tmp_path,
        {
            "csrc/a.cu": "",
            "csrc/b.cu": "",
            "csrc/readme.md": "",
            "setup.py": """
            import os
            from setuptools import setup
            from torch.utils import cpp_extension
            sources = []
            for f in sorted(os.listdir("csrc")):
                if f.endswith(".cu"):
                    sources.append(os.path.join("csrc", f))
            sources += ["bind.cpp"]
            setup(name="loopy", ext_modules=[cpp_extension.CppExtension(name="loopy._ops", sources=sources)])
        """,
        },
    )
    (ext,) = setup_py.analyse(tmp_path / "setup.py", tmp_path).extensions
    assert ext.kind == "CppExtension" and ext.sources == ("csrc/a.cu", "csrc/b.cu", "bind.cpp")
    assert ext.cuda  # .cu sources make it a CUDA build whatever the class


def test_setup_get_extensions_function_with_pathlib_and_unknown_condition(tmp_path):
    write(
        tmp_path,
        {
            "csrc/x.cu": "",
            "csrc/y/z.cu": "",
            "csrc/w.cpp": "",
            "setup.py": """
            import os
            from pathlib import Path
            import torch
            from setuptools import setup, find_packages
            from torch.utils.cpp_extension import CUDAExtension, CppExtension

            HERE = Path(__file__).resolve().parent

            def get_extensions():
                sources = [str(p.relative_to(HERE)) for p in (HERE / "csrc").rglob("*.cpp")]
                cuda = [str(p.relative_to(HERE)) for p in sorted((HERE / "csrc").rglob("*.cu"))]
                if os.getenv("FORCE_CUDA", "0") == "1" or torch.cuda.is_available():
                    return [CUDAExtension("meshops._C", sources + cuda)]
                return [CppExtension("meshops._C", sources)]

            setup(name="meshops", packages=find_packages(), ext_modules=get_extensions())
        """,
            "meshops/__init__.py": "",
        },
    )
    info = setup_py.analyse(tmp_path / "setup.py", tmp_path)
    assert [e.kind for e in info.extensions] == ["CUDAExtension"]
    assert info.extensions[0].sources == ("csrc/w.cpp", "csrc/x.cu", "csrc/y/z.cu")
    assert info.packages == ("meshops",)
    assert any("FORCE_CUDA" in g for g in info.guesses)  # the env var read is written down
    assert any("'if' branch" in g for g in info.guesses)  # and the branch taken on torch.cuda


def test_setup_windows_branch_not_taken(tmp_path):
    write(
        tmp_path,
        {
            "setup.py": """
        import os
        from setuptools import setup
        from torch.utils.cpp_extension import CUDAExtension
        if os.name == "nt":
            flags = ["/std:c++17"]
        else:
            flags = ["-std=c++14"]
        setup(name="w", ext_modules=[CUDAExtension("w_ext", ["w.cu"], extra_compile_args={"cxx": flags})])
    """
        },
    )
    (ext,) = setup_py.analyse(tmp_path / "setup.py", tmp_path).extensions
    assert dict(ext.flags)["cxx"] == ("-std=c++14",)


def test_setup_never_runs_code(tmp_path):
    marker = tmp_path / "ran"
    write(
        tmp_path,
        {
            "setup.py": f"""
        import os
        open({str(marker)!r}, "w").write("x")
        os.system("touch {marker}")
        from setuptools import setup
        setup(name="quiet")
    """
        },
    )
    info = setup_py.analyse(tmp_path / "setup.py", tmp_path)
    assert info.package == "quiet" and not marker.exists()


def test_setup_not_valid_python_names_file_and_line(tmp_path):
    write(tmp_path, {"sub/setup.py": "from setuptools import setup\nprint 'python two'\n"})
    with pytest.raises(InputError) as err:
        setup_py.analyse(tmp_path / "sub/setup.py", tmp_path)
    assert "sub/setup.py:2" in err.value.message and "not valid Python" in err.value.message
    assert "nothing was written" in err.value.hint


# --- JIT loaders --------------------------------------------------------------------------------


def test_jit_load_with_forced_standard(tmp_path):
    write(
        tmp_path,
        {
            "enc/backend.py": """
        import os
        from torch.utils.cpp_extension import load
        _dir = os.path.dirname(os.path.abspath(__file__))
        flags = ["-O3", "-std=c++14"]
        _backend = load(name="_hash_enc", extra_cflags=flags, extra_cuda_cflags=flags,
                        sources=[os.path.join(_dir, "src", f) for f in ["hash.cu", "bind.cpp"]])
    """
        },
    )
    (backend,) = jit.find(tmp_path / "enc/backend.py", tmp_path)
    assert backend.name == "_hash_enc" and backend.sources == ("enc/src/hash.cu", "enc/src/bind.cpp")
    assert "-std=c++14" in backend.flags and not backend.inline


def test_jit_load_inside_a_function_nobody_calls(tmp_path):
    write(
        tmp_path,
        {
            "ops.py": """
        import torch.utils.cpp_extension as ext
        def build():
            return ext.load("lazy_op", ["lazy.cu"])
    """
        },
    )
    (backend,) = jit.find(tmp_path / "ops.py", tmp_path)
    assert backend.name == "lazy_op" and backend.sources == ("lazy.cu",)


# --- README and environment.yml -----------------------------------------------------------------


def test_readme_install_blocks(tmp_path):
    write(
        tmp_path,
        {
            "ext/knn/setup.py": "",
            "README.md": """
        # Demo method

        ## Installation
        ```bash
        git clone https://github.com/someone/demo-method.git --recursive
        cd demo-method
        conda create -n demo python=3.8
        pip install -r requirements.txt
        pip install ./ext/knn
        pip install -e submodules/rast --no-build-isolation
        pip install "git+https://github.com/facebookresearch/pytorch3d.git@stable"
        git clone https://example.org/other/fastknn.git && cd fastknn && pip install .
        ```

        ## Data preparation
        ```
        pip install colmap-helper
        ```
    """,
            "requirements.txt": "tqdm\n",
        },
    )
    commands = readme.read(tmp_path, {"demo-method"})
    got = {(c.kind, c.target, c.clone, c.optional) for c in commands}
    assert ("python", "python=3.8", None, False) in got
    assert ("requirements-file", "requirements.txt", None, False) in got
    assert ("local", "ext/knn", None, False) in got  # cd into the method's own clone stays in the tree
    assert ("local", "submodules/rast", None, False) in got
    assert ("vcs", "git+https://github.com/facebookresearch/pytorch3d.git@stable", None, False) in got
    assert ("local", ".", "https://example.org/other/fastknn.git", False) in got
    assert ("requirement", "colmap-helper", None, True) in got  # a data-preparation tool: optional
    rast = next(c for c in commands if c.target == "submodules/rast")
    assert "--no-build-isolation" in rast.options and "-e" in rast.options
    assert rast.where == "README.md:11"


def test_environment_yml_with_pip_section(tmp_path):
    write(
        tmp_path,
        {
            "environment.yml": """
        name: demo
        channels: [conda-forge]
        dependencies:
          - python=3.7.13
          - pytorch=1.12.1
          - plyfile=0.8.1
          - pip
          - pip:
            - ./ext/knn
            - numpy
            - meshcubes==0.2.0
            - -e ./ext/other
            - not a requirement ((
    """
        },
    )
    decl = declared.read(tmp_path, [], [], [])
    items = [(d.text, d.kind, d.where, d.origin) for d in decl.items]
    assert ("pytorch==1.12.1", "requirement", "environment.yml:6", "environment.yml conda") in items
    assert ("plyfile==0.8.1", "requirement", "environment.yml:7", "environment.yml conda") in items
    assert ("ext/knn", "local", "environment.yml:10", "environment.yml pip") in items
    assert ("meshcubes==0.2.0", "requirement", "environment.yml:12", "environment.yml pip") in items
    assert ("ext/other", "local", "environment.yml:13", "environment.yml pip") in items
    assert decl.python == [("python=3.7.13", "environment.yml:5")]
    assert any("environment.yml:14" in p for p in decl.problems)


def test_requirements_includes_and_vcs(tmp_path):
    write(
        tmp_path,
        {
            "requirements.txt": "-r requirements-base.txt\ngit+https://github.com/example/pkg.git  # vcs\nsubmodules/knn\n",
            "requirements-base.txt": "tqdm>=4\n# a comment\n",
            "submodules/knn/setup.py": "",
        },
    )
    decl = declared.read(tmp_path, [], [], [])
    kinds = {(d.text, d.kind) for d in decl.items}
    assert {
        ("tqdm>=4", "requirement"),
        ("git+https://github.com/example/pkg.git", "vcs"),
        ("submodules/knn", "local"),
    } <= kinds


# --- imports ------------------------------------------------------------------------------------


def test_imports_guards_usage_and_strings(tmp_path):
    write(
        tmp_path,
        {
            "app.py": '''
        """Docstring with an example:
        import not_an_import
        """
        import os
        import cv2
        import mmcv
        from mmcv import Config
        try:
            import xformers.ops
        except ImportError:
            xformers = None
        try:
            import needed_after_all
        finally:
            pass
        cfg = mmcv.Config.fromfile("x.py")
        BFM = "data/3DMM/01_MorphableModel.mat"
        # OLD = "data/flame/generic_model.pkl"
        (params, it) = torch.load(path)
    '''
        },
    )
    facts = imports.read(tmp_path, [tmp_path / "app.py"])
    assert set(facts.imports) == {"os", "cv2", "mmcv", "xformers", "needed_after_all"}
    assert [s.guarded for s in facts.imports["xformers"]] == [True]
    assert [s.guarded for s in facts.imports["needed_after_all"]] == [False]  # finally does not catch
    assert facts.usage["mmcv"] == {"Config"}
    assert [s[0] for s in facts.strings] == ["data/3DMM/01_MorphableModel.mat"]  # the commented one is not opened
    assert facts.unpacked_loads == {"app.py": [20]}


# --- the index and the pin rules ----------------------------------------------------------------


@pytest.fixture
def local_index(tmp_path):
    simple = write_index(tmp_path / "index", INDEX)
    with serve(simple.parent) as url:
        yield SimpleIndex(url + "/simple/", cache=tmp_path / "index-cache")


TARGET = Target(Version("3.12"))


def test_releases_reads_wheel_tags():
    files = [pins_file(n) for n in INDEX["meshcubes"]]
    found = {str(r.version): (r.wheel, r.sdist) for r in releases(files, TARGET)}
    assert found == {"0.2.0": (False, True), "0.3.0": (True, False), "0.4.0": (True, False)}
    abi3 = releases([pins_file(n) for n in INDEX["opencv-python-headless"]], TARGET)
    assert abi3[0].wheel  # cp37-abi3 installs on 3.12


def pins_file(name: str):
    from envbuilder.new.index import IndexFile

    return IndexFile(name)


def test_pin_without_wheel_raised_to_first_release_with_one(local_index):
    out = pins.check_wheels(Requirement("meshcubes==0.2.0"), "environment.yml:12", local_index, TARGET)
    assert out.requirements == [
        (
            "meshcubes==0.3.0",
            "upstream pins meshcubes==0.2.0 (environment.yml:12), which has no wheel for cp312; 0.3.0 is the first "
            "release that has one (rule raise-to-wheel, looked up on the index)",
        )
    ]
    kept = pins.check_wheels(Requirement("plyreader==1.0.0"), "r.txt:1", local_index, TARGET)
    assert kept.requirements == [("plyreader==1.0.0", None)] and kept.todo is None


def test_sdist_only_and_unknown_projects_are_todos(local_index):
    sdist = pins.check_wheels(Requirement("speechfeat"), "r.txt:2", local_index, TARGET)
    assert sdist.requirements == [("speechfeat", None)] and "only source distributions" in sdist.todo
    missing = pins.check_wheels(Requirement("no-such-project"), "r.txt:3", local_index, TARGET)
    assert "is not on the index" in missing.todo


def test_index_answers_are_cached(tmp_path):
    simple = write_index(tmp_path / "index", {"tqdm": INDEX["tqdm"]})
    cache = tmp_path / "cache"
    with serve(simple.parent) as url:
        assert [f.filename for f in SimpleIndex(url + "/simple/", cache=cache).files("tqdm")] == INDEX["tqdm"]
    # the server is gone: a new index object answers from the cache, an uncached project cannot
    offline = SimpleIndex(url + "/simple/", cache=cache)
    assert [f.filename for f in offline.files("tqdm")] == INDEX["tqdm"]
    with pytest.raises(IndexUnavailable):
        offline.files("numpy")
    out = pins.check_wheels(Requirement("numpy==1.22.0"), "r.txt:1", offline, TARGET)
    assert out.requirements == [("numpy==1.22.0", None)] and "could not check" in out.todo


@pytest.mark.parametrize(
    ("text", "usage", "written", "dropped"),
    [
        ("torch==1.13.1", {}, [], True),
        ("torchvision==0.14.1", {}, [], True),
        ("mmcv==1.6.0", {"mmcv": {"Config"}}, ["mmengine-lite==0.10.7", "packaging"], False),
        ("mmcv-full==1.7.1", {"mmcv": {"Config", "ops"}}, [], True),
        ("tensorflow-gpu==2.8.0", {}, ["tensorflow>=2.16"], False),
        ("opencv-python==4.5.5.64", {}, ["opencv-python-headless==4.5.5.64"], False),
        ("xformers==0.0.22", {}, [], True),
        ("argparse", {}, [], True),
        ("chumpy", {}, ["chumpy"], False),
    ],
)
def test_pin_rules(text, usage, written, dropped):
    facts = pins.Facts(usage=usage, names={Requirement(text).name})
    req = Requirement(text)
    rule = pins.rule_for(req, "requirements.txt", facts)
    assert rule is not None, f"no rule for {text}"
    out = pins.apply_rule(rule, req, "requirements.txt:1", facts)
    assert [r for r, _ in out.requirements] == written
    assert bool(out.dropped) == dropped
    assert all(
        (why and f"rule {rule.id}" in (why + (out.dropped or ""))) or "imports it" in why for _, why in out.requirements
    )
    assert rule.source  # every rule says where its fact comes from


def test_mmcv_used_beyond_config_is_not_replaced():
    facts = pins.Facts(usage={"mmcv": {"Config", "ops"}})
    assert pins.rule_for(Requirement("mmcv==1.6.0"), "requirements.txt", facts) is None


def test_protobuf_cap_goes_with_tensorflow_gpu():
    with_tf = pins.Facts(names={"tensorflow-gpu", "protobuf"})
    assert pins.rule_for(Requirement("protobuf<=3.20.1"), "README pip", with_tf).id == "protobuf-for-old-tensorflow"
    assert pins.rule_for(Requirement("protobuf<=3.20.1"), "README pip", pins.Facts(names={"protobuf"})) is None


def test_conda_toolchain_rule_only_for_conda_entries():
    facts = pins.Facts()
    assert pins.rule_for(Requirement("ffmpeg"), "environment.yml conda", facts).id == "conda-toolchain"
    assert pins.rule_for(Requirement("ninja"), "requirements.txt", facts) is None


# --- fingerprints -------------------------------------------------------------------------------


def _ext(tmp_path: Path, files: dict[str, str]):
    root = write(tmp_path / "ext", {k: v for k, v in files.items()})
    info = setup_py.analyse(root / "setup.py", root)
    return root, info


def test_fingerprint_matches_the_shared_rasterizer(tmp_path):
    root, info = _ext(tmp_path, rasterizer_files())
    m = fingerprint.match(root, info, info.extensions[0])
    assert m.extension == "diff-gaussian-rasterization", m.failed


def test_fingerprint_refuses_a_fork_with_another_python_interface(tmp_path):
    root, info = _ext(tmp_path, rasterizer_files(extra_field="kernel_size: float"))
    m = fingerprint.match(root, info, info.extensions[0])
    assert m.extension is None and m.candidate.extension == "diff-gaussian-rasterization"
    assert m.failed == [
        "GaussianRasterizationSettings requires kernel_size, which the shared extension's probe does not pass"
    ]


def test_fingerprint_needs_the_files_envbuilders_patches_edit(tmp_path):
    """A tree that builds the shared module but lacks the header the shipped cstdint patch edits
    is not the shared rasterizer: that patch could not apply to it."""
    files = rasterizer_files()
    del files["cuda_rasterizer/rasterizer_impl.h"]
    root, info = _ext(tmp_path, files)
    m = fingerprint.match(root, info, info.extensions[0])
    assert m.extension is None and m.failed == ["lacks cuda_rasterizer/rasterizer_impl.h"]


def test_fingerprint_accepts_a_field_with_a_default(tmp_path):
    root, info = _ext(tmp_path, rasterizer_files(extra_field="antialiasing: bool = False"))
    assert fingerprint.match(root, info, info.extensions[0]).extension == "diff-gaussian-rasterization"


def test_fingerprint_knn_cpp_interface(tmp_path):
    files = knn_files()
    root, info = _ext(tmp_path, files)
    assert fingerprint.match(root, info, info.extensions[0]).extension == "simple-knn"
    (root / "spatial.h").write_text(
        "#include <torch/extension.h>\ntorch::Tensor distCUDA2(const torch::Tensor& p, int k);\n"
    )
    m = fingerprint.match(root, info, info.extensions[0])
    assert m.extension is None and "distCUDA2 takes 2 parameters" in m.failed[0]


def test_cpp_param_count():
    assert fingerprint.cpp_param_count("void f(at::optional<at::Tensor> a, std::map<int, int> b, int c);", "f") == 3
    assert fingerprint.cpp_param_count("int g(void);", "g") == 0
    assert fingerprint.cpp_param_count("int h();", "nothing") is None


# --- gated assets ---------------------------------------------------------------------------------


def test_gated_assets_from_the_paths_the_code_opens(tmp_path):
    from envbuilder.new import assets

    write(
        tmp_path,
        {
            "body/models.py": """
            import os
            import os.path as osp
            import smplx
            model_path = os.environ.get("BODY_MODELS", osp.join(osp.dirname(osp.abspath(__file__)), "files"))
            neutral = smplx.create(model_path, "smplx", gender="NEUTRAL", use_pca=False)
            male = smplx.create(model_path, "smpl", gender="MALE")
            with open(osp.join(model_path, "smplx", "SMPLX_to_J14.pkl"), "rb") as f:
                pass
        """,
            "head/flame.py": 'FLAME_PATH = "assets/flame/flame2023.pkl"\n',
            "assets/flame/.keep": "",
            "elsewhere.py": "def load(folder):\n    return os.path.join(folder, 'generic_model.pkl')\n",
        },
    )
    files = [tmp_path / "body/models.py", tmp_path / "head/flame.py", tmp_path / "elsewhere.py"]
    facts = imports.read(tmp_path, files)
    found, todos = assets.find(tmp_path, facts.strings, ["body/models.py"])
    got = {(f.name, f.path, f.model.kind) for f in found}
    assert got == {
        ("flame2023", "assets/flame/flame2023.pkl", "flame-pkl"),
        ("smplx-to-j14", "body/files/smplx/SMPLX_to_J14.pkl", "file"),
        ("smplx-neutral", "body/files/smplx/SMPLX_NEUTRAL.npz", "smplx-model"),
        ("smpl-male", "body/files/smpl/SMPL_MALE.pkl", "smpl-model"),
    }
    smplx_neutral = next(f for f in found if f.name == "smplx-neutral")
    assert smplx_neutral.sites == ["body/models.py:6"]
    assert any(
        "BODY_MODELS" in n and str(tmp_path) not in n for n in smplx_neutral.notes
    )  # the env var read as unset, said so
    (todo,) = todos  # a model file in a folder only running the code would tell: not guessed
    assert "generic_model.pkl (elsewhere.py:2)" in todo and "flame.is.tue.mpg.de" in todo


def test_pyproject_dependencies_and_a_broken_one(tmp_path):
    write(
        tmp_path / "ok",
        {
            "pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.9"\ndependencies = [\n  "tqdm",\n  "numpy<2",\n]\n'
        },
    )
    decl = declared.read(tmp_path / "ok", [], [], [])
    assert [(d.text, d.where) for d in decl.items] == [("tqdm", "pyproject.toml:5"), ("numpy<2", "pyproject.toml:6")]
    assert decl.python == [("requires-python >=3.9", "pyproject.toml:3")]
    write(tmp_path / "bad", {"pyproject.toml": "[project\nname = \n"})
    bad = declared.read(tmp_path / "bad", [], [], [])
    assert bad.items == [] and bad.problems and "not valid TOML" in bad.problems[0]
