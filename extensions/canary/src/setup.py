"""Build envbuilder's canary extension. TORCH_CUDA_ARCH_LIST selects the archs (no hard-coded
-gencode here: any nvcc flag containing "arch" would make torch drop its own -gencode flags)."""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name="envbuilder-canary",
    version="0.1.0",
    packages=["envbuilder_canary"],
    ext_modules=[
        CUDAExtension(
            "envbuilder_canary._C",
            sources=["csrc/canary.cpp", "csrc/canary_cuda.cu"],
            extra_compile_args={"cxx": ["-O2"], "nvcc": ["-O2"]},
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
