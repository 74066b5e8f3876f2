"""envbuilder: reproducible environments for CUDA research code on NVIDIA Blackwell (sm_120)."""

__version__ = "0.1.0"
