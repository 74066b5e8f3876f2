"""envbuilder's canary CUDA extension: proves a toolchain produces working code for an arch."""

import torch  # noqa: F401  (loads libc10/libtorch, which _C links against)

from envbuilder_canary._C import axpb, cplusplus, min, nvcc_version, running_arch  # noqa: A004

__all__ = ["axpb", "cplusplus", "min", "nvcc_version", "running_arch"]
