// envbuilder canary: small kernels whose results are easy to check.
// Shared by the torch extension (canary_cuda.cu) and the standalone doctor program
// (canary_main.cu). It deliberately uses what 3DGS-era extensions use and what breaks on new
// toolchains: fixed-width integers (<cstdint>), FLT_MAX (<cfloat>) and CUB (needs C++17 on CUDA 13).
#pragma once

#include <cfloat>
#include <cstdint>

#include <cub/cub.cuh>

namespace canary {

// y = a * x + b, elementwise.
__global__ void axpb_kernel(const float* x, float* y, float a, float b, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + b;
}

// Writes the __CUDA_ARCH__ of the SASS (or JIT-compiled PTX) that actually runs, e.g. 900 on H100.
__global__ void arch_kernel(int32_t* out) {
#ifdef __CUDA_ARCH__
  *out = __CUDA_ARCH__;
#endif
}

// Per-block minimum, seeded with FLT_MAX; the host finishes the reduction.
__global__ void block_min_kernel(const float* x, float* block_min, int64_t n) {
  using BlockReduce = cub::BlockReduce<float, 256>;
  __shared__ typename BlockReduce::TempStorage storage;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float v = i < n ? x[i] : FLT_MAX;
  float m = BlockReduce(storage).Reduce(v, [](float p, float q) { return p < q ? p : q; });
  if (threadIdx.x == 0) block_min[blockIdx.x] = m;
}

}  // namespace canary
