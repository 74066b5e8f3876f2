"""The diagnose catalogue (envbuilder/diagnose/signatures.yaml) and its scanner.

Every signature is tested against the lines users pasted in its source threads (the `examples`
in the data file): it must find each of them, and no other signature may match them unless it is
declared a cascade of it. Clean logs of each kind envbuilder writes are in test_diagnose_logs.py.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envbuilder import diagnose
from envbuilder.diagnose.catalogue import CATALOGUE_FILE, Catalogue, load, signature_ids
from envbuilder.errors import RecipeError

CAT = Catalogue.default()
PATTERNED = [s for s in CAT.signatures if s.patterns]
EXAMPLES = [(s.id, i) for s in PATTERNED for i in range(len(s.examples))]

# The lines the first catalogue (40 positional entries) was tested with: each is still found
# with the same id. Two now carry the context their signature needs to tell build from run time.
SAMPLES = {
    "no-kernel-image": "RuntimeError: CUDA error: no kernel image is available for execution on the device",
    "torch-gpu-unsupported": "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch installation.",
    "nvcc-unsupported-arch": "nvcc fatal   : Unsupported gpu architecture 'compute_120'",
    "torch-unknown-arch": "ValueError: Unknown CUDA arch (12.0f) or GPU not supported",
    "flt-max-undefined": 'simple_knn.cu(90): error: identifier "FLT_MAX" is undefined',
    "cstdint-missing": 'rasterizer_impl.h(24): error: namespace "std" has no member "uintptr_t"',
    "cxx17-required": "all.h:4:2: error: #error C++17 or later compatible compiler is required to use PyTorch.",
    "cxx20-required": "all.h:5:2: error: #error C++20 or later compatible compiler is required to use PyTorch.",
    "cccl-needs-cpp17": "cpp_dialect.h:78:6: error: #error Thrust requires at least C++17. Define CCCL_IGNORE_DEPRECATED_CPP_DIALECT",
    "cuda-version-mismatch": "RuntimeError: ('The detected CUDA version (%s) mismatches the version that was used to compilePyTorch (%s). Please make sure to use the same CUDA versions.', '12.8', '13.0')",
    "gcc-too-new": "host_config.h:143:2: error: #error -- unsupported GNU version! gcc versions later than 14 are not supported!",
    "torch-gcc-window": "RuntimeError: The current installed version of g++ (14.2.0) is greater than the maximum required version by CUDA 12.8. Please make sure to use an adequate version of g++ (>=6.0.0, <14.0).",
    "build-isolation-no-torch": "  × Getting requirements to build wheel did not run successfully.\nModuleNotFoundError: No module named 'torch'",  # noqa: RUF001 (pip's own sign)
    "pkg-resources-missing": "ModuleNotFoundError: No module named 'pkg_resources'",
    "pkgutil-impimporter": "AttributeError: module 'pkgutil' has no attribute 'ImpImporter'. Did you mean: 'zipimporter'?",
    "distutils-missing": "ModuleNotFoundError: No module named 'distutils'",
    "thrust-sequence": 'simple_knn.cu(120): error: namespace "thrust" has no member "sequence"',
    "cub-thrust-mismatch": "#error The version of CUB in your include path is not compatible with this release of Thrust.",
    "not-installable": "ERROR: Directory 'submodules/simple-knn' is not installable. Neither 'setup.py' nor 'pyproject.toml' found.",
    "arch-specific-instruction": "ptxas /tmp/x.ptx, line 1234; error   : Instruction 'tensormap.replace' not supported on .target 'sm_120'",
    "arch-list-unset": "UserWarning: TORCH_CUDA_ARCH_LIST is not set, all archs for visible cards are included for compilation.",
    "arch-list-no-gpu": "    arch_list[-1] += '+PTX'",
    "out-of-memory-build": "c++: fatal error: Killed signal terminated program cc1plus",
    "cuda-home-unset": "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.",
    "nvcc-not-found": "RuntimeError: nvcc not found at '/usr/local/bin/nvcc'",
    "cannot-find-cudart": "/usr/bin/ld: cannot find -lcudart: No such file or directory",
    "cuda13-template-stub-linkage": "/usr/bin/ld: build/lib/pytorch3d/_C.so: hidden symbol `_ZN6pulsar8Renderer7fill_bgILb1EEEvNS0_8RendererENS_7CamInfoEPKffj' isn't defined",
    "cuda-library-header-missing": "CUDAContextLight.h:10:10: fatal error: cusparse.h: No such file or directory",
    "mmcv-config-moved": "AttributeError: module 'mmcv' has no attribute 'Config'",
    "iteration-window": '  File "train_face.py", line 261, in <module>\nZeroDivisionError: division by zero',
    "glibc-cospi": 'math_functions.h(5554): error: exception specification is incompatible with that of previous function "cospi"',
    "weights-only-load": "_pickle.UnpicklingError: Weights only load failed. This file can still be loaded, to do so you have two options",
    "no-tkinter": "ModuleNotFoundError: No module named 'tkinter'",
    "pil-int8-rgb": "TypeError: Cannot handle this data type: (1, 1, 3), |i1",
    "numpy-alias": "ImportError: cannot import name 'bool' from 'numpy'",
    "numpy2-promotion": "RuntimeError: expected scalar type Float but found Double",
    "inspect-getargspec": "AttributeError: module 'inspect' has no attribute 'getargspec'. Did you mean: 'getargs'?",
    "bool-subtraction": "RuntimeError: Subtraction, the `-` operator, with a bool tensor is not supported.",
    "gated-asset-missing": "FileNotFoundError: [Errno 2] No such file or directory: 'data/assets/flame/flame2023_no_jaw.pkl'",
    "unsupported-ptx-toolchain": "CUDA error: the provided PTX was compiled with an unsupported toolchain.",
}

# Lines from field logs that report no failure: warnings, notes, progress. None may be a finding.
BENIGN = [
    "UserWarning: Attempted to use ninja as the BuildExtension backend but we could not find ninja.. Falling back to using the slow distutils backend.",
    "UserWarning: The detected CUDA version (11.8) has a minor version mismatch with the version that was used to compile PyTorch (11.6). Most likely this shouldn't be a problem.",
    "UserWarning: There are no g++ version bounds defined for CUDA version 12.1",
    "W tensorflow/compiler/xla/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library 'libnvinfer.so.7'; dlerror: libnvinfer.so.7: cannot open shared object file: No such file or directory",
    "No CUDA runtime is found, using CUDA_HOME='/usr/local/cuda'",
    "WARNING: Location 'file:///opt/pypi/simple/torch/' is ignored: it is neither a file nor a directory.",
    'backward.cu(471): warning #177-D: variable "c" was declared but never referenced',
    'rasterize_points.cu(96): warning #1444-D: function "at::Tensor::data() const" was declared deprecated',
    "Emitting ninja build file /home/u/src/build/temp.linux-x86_64-cpython-312/build.ninja...",
    "[3/5] /usr/local/cuda/bin/nvcc -c cuda_rasterizer/forward.cu -o forward.o -gencode=arch=compute_120,code=sm_120 -std=c++17",
    "Successfully built diff_gaussian_rasterization",
    "Training progress: 100%|██████████| 30000/30000 [10:02<00:00, 49.8it/s, Loss=0.0123]",
    "Requirement already satisfied: numpy<2 in ./venv/lib/python3.12/site-packages (1.26.4)",
    # torch without numpy, in a clean canary build's extensions log (found by the canary test)
    "  torch/_subclasses/functional_tensor.py:368: UserWarning: Failed to initialize NumPy: No module named 'numpy' (Triggered internally at /__w/pytorch/pytorch/torch/csrc/utils/tensor_numpy.cpp:84.)",
]


def test_the_catalogue_is_large_ordered_and_cited():
    assert len(PATTERNED) >= 80
    assert len(set(CAT.ids)) == len(CAT.ids)
    order = [CAT.categories.index(s.category) for s in CAT.signatures]
    assert order == sorted(order)  # toolchain -> sources -> install -> ... -> data
    assert CAT.categories == ("toolchain", "sources", "install", "compile", "link", "import", "run", "data")
    assert all(s.source for s in CAT.signatures)
    threads = {src for s in CAT.signatures for src in s.source if not src.startswith("envbuilder:")}
    assert len(threads) >= 80


def test_patch_files_see_the_same_ids_cheaply():
    assert signature_ids() == set(CAT.ids)
    assert set(SAMPLES) <= {s.id for s in PATTERNED}


@pytest.mark.parametrize(("sid", "line"), sorted(SAMPLES.items()))
def test_each_first_catalogue_line_is_still_found(sid, line):
    log = f"building...\n[3/7] compiling\n{line}\nerror: command failed\n"
    found = {f.id: f for f in diagnose.scan(log)}
    assert sid in found, sorted(found)
    assert found[sid].line_number == 3 if "\n" not in line else found[sid].line_number > 3
    assert found[sid].cause and found[sid].fix


@pytest.mark.parametrize(("sid", "index"), EXAMPLES)
def test_each_signature_finds_its_own_examples_first(sid, index):
    sig = CAT.get(sid)
    text = sig.examples[index].text
    found = diagnose.scan(text)
    ids = [f.id for f in found]
    assert sid in ids, (sig.examples[index].source, ids)
    if not sig.is_cascade:
        assert ids[0] == sid, ids  # nothing more specific is in its own line


@pytest.mark.parametrize("sid", [s.id for s in PATTERNED])
def test_every_pattern_of_a_signature_has_an_example_line(sid):
    sig = CAT.get(sid)
    lines = [line for e in sig.examples for line in e.text.splitlines()]
    for pattern, regex in zip(sig.patterns, sig.regexes, strict=True):
        assert any(regex.search(line) for line in lines), f"{sid}: no example shows {pattern!r}"


@pytest.mark.parametrize("sid", [s.id for s in PATTERNED])
def test_no_signature_matches_anothers_example_unless_a_declared_cascade(sid):
    sig = CAT.get(sid)
    for other in PATTERNED:
        if other.id == sid:
            continue
        for example in other.examples:
            if diagnose.matches(sig, example.text):
                assert other.id in sig.cascade_of, (
                    f"{sid} matches an example of {other.id} ({example.source}) but is not declared a cascade of it"
                )


def test_a_cascade_reports_its_root_cause_first():
    log = textwrap.dedent(
        """\
        Processing ./submodules/simple-knn
          Building wheel for simple_knn (setup.py) ... error
          [1/2] /usr/local/cuda/bin/nvcc -c simple_knn.cu -o simple_knn.o
          simple_knn.cu(90): error: identifier "FLT_MAX" is undefined
          1 error detected in the compilation of "simple_knn.cu".
          ninja: build stopped: subcommand failed.
          error: command '/usr/local/cuda/bin/nvcc' failed with exit code 1
          ERROR: Failed building wheel for simple_knn
        Failed to build simple_knn
        Traceback (most recent call last):
          File "train.py", line 3, in <module>
            from simple_knn._C import distCUDA2
        ModuleNotFoundError: No module named 'simple_knn'
        """
    )
    found = diagnose.scan(log)
    ids = [f.id for f in found]
    assert ids[0] == "flt-max-undefined"
    assert ids[1:] == ["ninja-build-failed", "nvcc-command-failed", "wheel-build-failed", "extension-not-installed"]
    assert all(f.follows == ("flt-max-undefined",) for f in found[1:])
    # the order is the rule, not the log's order: a later root cause still comes first
    again = diagnose.scan("ModuleNotFoundError: No module named 'simple_knn'\n" + log)
    assert again[0].id == "flt-max-undefined" and again[0].line_number == 5


def test_a_cascade_alone_is_reported_without_a_root():
    found = diagnose.scan("ERROR: Failed building wheel for simple_knn\n")
    assert [(f.id, f.follows) for f in found] == [("wheel-build-failed", ())]


def test_every_cascade_is_declared_in_the_data():
    cascades = [s for s in CAT.signatures if s.is_cascade]
    assert {"wheel-build-failed", "nvcc-command-failed", "ninja-build-failed", "extension-not-installed"} <= {
        s.id for s in cascades
    }
    for sig in cascades:
        assert set(sig.cascade_of) <= set(CAT.ids) and sig.id not in sig.cascade_of


def test_a_line_is_one_finding():
    # the generic missing-module signature does not take a line a specific one explains
    assert [f.id for f in diagnose.scan("ModuleNotFoundError: No module named 'distutils'")] == ["distutils-missing"]
    found = diagnose.scan("ModuleNotFoundError: No module named 'plyfile'")
    assert [f.id for f in found] == ["missing-python-module"]


def test_near_tells_build_time_from_run_time():
    run_time = (
        "Traceback (most recent call last):\n  File \"train.py\", line 1\nModuleNotFoundError: No module named 'torch'"
    )
    assert [f.id for f in diagnose.scan(run_time)] == ["torch-not-installed"]
    build = "  × Getting requirements to build wheel did not run successfully.\n" + run_time  # noqa: RUF001 (pip's own sign)
    assert [f.id for f in diagnose.scan(build)][0] == "build-isolation-no-torch"
    assert diagnose.scan("ZeroDivisionError: division by zero") == []  # not a TalkingGaussian run


@pytest.mark.parametrize("line", BENIGN)
def test_benign_field_lines_are_no_finding(line):
    assert diagnose.scan(line) == []


def test_findings_serialise_for_the_executor():
    (finding,) = diagnose.scan('x.cu(3): error: identifier "FLT_MAX" is undefined')
    data = finding.to_json()
    assert data["id"] == "flt-max-undefined" and data["line"] == "1" and data["category"] == "compile"
    assert data["command"].startswith("envbuilder patch") and "gaussian-splatting#1296" in data["source"]


def test_every_command_is_one_the_cli_accepts():
    from envbuilder.cli import build_parser

    parser = build_parser()
    fill = {"RECIPE": "canary", "DIR": "/tmp", "FILE": "/tmp/model.pkl"}
    for sig in CAT.signatures:
        if sig.command:
            argv = [fill.get(word, word) for word in shlex.split(sig.command)[1:]]
            parser.parse_args(argv)  # SystemExit (exit 2) when the CLI no longer has this spelling


def test_the_fast_yaml_path_reads_the_same_tree():
    from envbuilder.recipe import yamlfile

    slow, _ = yamlfile.load(CATALOGUE_FILE)
    fast, _ = yamlfile.load(CATALOGUE_FILE, fast=True)
    assert slow == fast
    assert [s.line for s in slow["signatures"]] == [s.line for s in fast["signatures"]]
    assert slow["signatures"][3].key_lines == fast["signatures"][3].key_lines


# --- the loader is strict: every mistake names file:line -------------------------------------

GOOD = """\
categories: [compile, run]
signatures:
- id: flt
  category: compile
  pattern: 'identifier "FLT_MAX" is undefined'
  cause: c
  fix: f
  source: [a/b#1]
  examples:
  - from: a/b#1
    text: 'x.cu(1): error: identifier "FLT_MAX" is undefined'
- id: failed
  category: run
  pattern: 'command failed'
  cascade_of: [flt]
  cause: c
  fix: f
  source: a/b#2
  examples:
  - from: a/b#2
    text: 'command failed'
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "signatures.yaml"
    path.write_text(text)
    return path


def test_a_small_catalogue_loads(tmp_path):
    cat = load(_write(tmp_path, GOOD))
    assert cat.ids == ("flt", "failed") and cat.get("failed").cascade_of == ("flt",)
    found = diagnose.scan('x.cu(1): error: identifier "FLT_MAX" is undefined\ncommand failed', cat)
    assert [(f.id, f.follows) for f in found] == [("flt", ()), ("failed", ("flt",))]


@pytest.mark.parametrize(
    ("old", "new", "line", "needle"),
    [
        (
            "  cause: c\n  fix: f\n  source: [a/b#1]",
            "  cause: c\n  fixx: f\n  source: [a/b#1]",
            7,
            "unknown key 'fixx'",
        ),
        ("'identifier \"FLT_MAX\" is undefined'", "'identifier (FLT_MAX is undefined'", 5, "not a valid regex"),
        ("'identifier \"FLT_MAX\" is undefined'", "'(?i)flt_max is undefined'", 5, "(?i)"),
        ("'identifier \"FLT_MAX\" is undefined'", "'\\d+:\\d+'", 5, "literal of 3+ characters"),
        ("cascade_of: [flt]", "cascade_of: [fltt]", 15, "unknown signature or category 'fltt'"),
        ("  - from: a/b#2", "  - from: a/b#9", 20, "is not one of this signature's sources"),
        ("categories: [compile, run]", "categories: [run, compile]", 12, "keep the file in the categories' order"),
        ("- id: failed", "- id: flt", 12, "duplicate signature id 'flt'"),
        ("  category: run", "  category: runn", 13, "unknown category 'runn'"),
        ("source: a/b#2", "source: a thread", 18, "is not a source"),
        ("  cascade_of: [flt]\n", "  cascade_of: [flt]\n  command: pip install x\n", 16, "not an envbuilder command"),
        (
            "  examples:\n  - from: a/b#1\n    text: 'x.cu(1): error: identifier \"FLT_MAX\" is undefined'\n",
            "",
            3,
            "no examples",
        ),
    ],
)
def test_malformed_catalogues_name_file_and_line(tmp_path, old, new, line, needle):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RecipeError) as info:
        load(path)
    assert needle in f"{info.value} {info.value.hint}", str(info.value)
    assert info.value.file == str(path) and info.value.line == line, str(info.value)


def test_bad_yaml_in_a_catalogue_names_the_line(tmp_path):
    path = _write(tmp_path, GOOD.replace("  cause: c\n", "  cause: c: d\n", 1))
    with pytest.raises(RecipeError) as info:
        load(path)
    assert info.value.file == str(path) and info.value.line == 6


# --- the command line ------------------------------------------------------------------------


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envbuilder", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_diagnose_reads_standard_input():
    log = "simple_knn.cu(90): error: identifier \"FLT_MAX\" is undefined\nerror: command '/usr/local/cuda/bin/nvcc' failed with exit code 1\n"
    done = _cli("diagnose", "-", "--json", stdin=log)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [(d["id"], d["line"], d["follows"]) for d in data] == [
        ("flt-max-undefined", "1", []),
        ("nvcc-command-failed", "2", ["flt-max-undefined"]),
    ]
    text = _cli("diagnose", "-", stdin=log).stdout
    assert "follows from flt-max-undefined" in text and "run:   envbuilder patch apply RECIPE" in text


def test_diagnose_list_prints_the_catalogue():
    data = json.loads(_cli("diagnose", "--list", "--json").stdout)
    assert [d["id"] for d in data] == list(CAT.ids)
    assert all(d["examples"] for d in data if d["patterns"])
    text = _cli("diagnose", "--list").stdout
    assert all(f"{c} (" in text for c in CAT.categories) and f"{len(PATTERNED)} signatures" in text


def test_diagnose_without_a_log_says_what_to_give(tmp_path):
    done = _cli("diagnose")
    assert done.returncode == 2 and "nothing to diagnose" in done.stderr and "--list" in done.stderr
    missing = _cli("diagnose", str(tmp_path / "none.log"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
