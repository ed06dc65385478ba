"""The Triton backend: the scheduler's kernels as Triton sources for NVIDIA
GPUs ([Note: Triton launches] in launch.py). Same IR and schedule as the C++
backend; build/triton_build.py compiles the sources offline to cubin + PTX
and codegen/wrapper/cuda_wrapper.py launches them."""

from .launch import TritonArg, TritonCodegenError, TritonKernel

__all__ = ["TritonArg", "TritonCodegenError", "TritonKernel"]
