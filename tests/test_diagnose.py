"""Every catalogue entry is recognised in recorded log text (the real failing builds are in
test_patch_builds.py: cstdint, cfloat, C++ standard), and nothing is reported for a clean log."""

from __future__ import annotations

import pytest

from envbuilder import diagnose

# One line a user has seen for each signature (sources in envbuilder/diagnose.py).
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
    "build-isolation-no-torch": "ModuleNotFoundError: No module named 'torch'",
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
    "iteration-window": "ZeroDivisionError: division by zero",
    "glibc-cospi": 'math_functions.h(5554): error: exception specification is incompatible with that of previous function "cospi"',
    "weights-only-load": "_pickle.UnpicklingError: Weights only load failed. This file can still be loaded, to do so you have two options",
    "no-tkinter": "ModuleNotFoundError: No module named 'tkinter'",
    "pil-int8-rgb": "TypeError: Cannot handle this data type: (1, 1, 3), |i1",
    "numpy-alias": "ImportError: cannot import name 'bool' from 'numpy'",
    "inspect-getargspec": "AttributeError: module 'inspect' has no attribute 'getargspec'. Did you mean: 'getargs'?",
    "bool-subtraction": "RuntimeError: Subtraction, the `-` operator, with a bool tensor is not supported.",
    "gated-asset-missing": "FileNotFoundError: [Errno 2] No such file or directory: 'data/assets/flame/flame2023_no_jaw.pkl'",
    "unsupported-ptx-toolchain": "CUDA error: the provided PTX was compiled with an unsupported toolchain.",
}


def test_the_catalogue_is_large_and_complete():
    ids = [s.id for s in diagnose.CATALOGUE]
    assert len(ids) == len(set(ids)) >= 25
    scanned = {s.id for s in diagnose.CATALOGUE if s.pattern is not None}
    assert scanned == set(SAMPLES), scanned ^ set(SAMPLES)


@pytest.mark.parametrize(("sid", "line"), sorted(SAMPLES.items()))
def test_each_signature_is_found(sid, line):
    log = f"building...\n[3/7] compiling\n{line}\nerror: command failed\n"
    found = [f.signature.id for f in diagnose.scan(log)]
    assert sid in found
    finding = next(f for f in diagnose.scan(log) if f.signature.id == sid)
    assert finding.line_number == 3 and finding.cause and finding.fix


def test_a_clean_build_log_has_no_findings():
    log = "\n".join(
        [
            "[1/3] /usr/local/cuda/bin/nvcc -gencode=arch=compute_120,code=sm_120 -c csrc/canary_cuda.cu",
            "[2/3] c++ -std=c++20 -c csrc/canary.cpp",
            "[3/3] c++ -shared -o _C.so",
            "Successfully built envbuilder_canary",
        ]
    )
    assert diagnose.scan(log) == []
