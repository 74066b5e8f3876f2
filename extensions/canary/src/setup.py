"""Build envbuilder's canary extension. TORCH_CUDA_ARCH_LIST selects the archs.

Like the 3DGS rasterizers, it passes an include directory by absolute path to nvcc. torch drops
every -gencode flag when any nvcc flag contains the text "arch", so a checkout under a path such
as ~/research/ silently loses the requested archs; envbuilder builds such trees through a
symlink, and the canary proves that it works."""

import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    name="envbuilder-canary",
    version="0.1.0",
    packages=["envbuilder_canary"],
    ext_modules=[
        CUDAExtension(
            "envbuilder_canary._C",
            sources=["csrc/canary.cpp", "csrc/canary_cuda.cu"],
            extra_compile_args={"cxx": ["-O2"], "nvcc": ["-O2", "-I" + os.path.join(HERE, "csrc")]},
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
