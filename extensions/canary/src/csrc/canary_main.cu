// Standalone canary for `envbuilder doctor`: needs only nvcc and a driver, no torch.
// Prints one JSON line: which device ran, which __CUDA_ARCH__ ran, and whether results match.
#include <cmath>
#include <cstdio>
#include <vector>

#include "canary_kernels.cuh"

#define CHECK(call)                                                                        \
  do {                                                                                     \
    cudaError_t err_ = (call);                                                             \
    if (err_ != cudaSuccess) {                                                             \
      std::printf("{\"ok\": false, \"error\": \"%s\", \"call\": \"%s\"}\n",                \
                  cudaGetErrorString(err_), #call);                                        \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

int main() {
  int count = 0;
  CHECK(cudaGetDeviceCount(&count));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));

  const int64_t n = 1 << 16;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 7.0f - 50.0f;
  float *dx = nullptr, *dy = nullptr, *dmin = nullptr;
  int32_t* darch = nullptr;
  const int threads = 256, blocks = static_cast<int>((n + threads - 1) / threads);
  CHECK(cudaMalloc(&dx, n * sizeof(float)));
  CHECK(cudaMalloc(&dy, n * sizeof(float)));
  CHECK(cudaMalloc(&dmin, blocks * sizeof(float)));
  CHECK(cudaMalloc(&darch, sizeof(int32_t)));
  CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  canary::axpb_kernel<<<blocks, threads>>>(dx, dy, 2.5f, -1.0f, n);
  canary::block_min_kernel<<<blocks, threads>>>(dx, dmin, n);
  canary::arch_kernel<<<1, 1>>>(darch);
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  std::vector<float> mins(blocks);
  int32_t arch = 0;
  CHECK(cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(mins.data(), dmin, blocks * sizeof(float), cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(&arch, darch, sizeof(int32_t), cudaMemcpyDeviceToHost));

  double max_err = 0.0;
  float want_min = FLT_MAX, got_min = FLT_MAX;
  for (int64_t i = 0; i < n; ++i) {
    max_err = std::fmax(max_err, std::fabs(y[i] - (2.5f * x[i] - 1.0f)));
    want_min = std::fmin(want_min, x[i]);
  }
  for (float m : mins) got_min = std::fmin(got_min, m);
  const bool ok = max_err < 1e-5 && got_min == want_min && arch > 0;
  std::printf(
      "{\"ok\": %s, \"device\": \"%s\", \"compute_capability\": \"%d.%d\", \"devices\": %d, "
      "\"running_arch\": %d, \"axpb_max_error\": %g, \"min\": %g, \"min_expected\": %g}\n",
      ok ? "true" : "false", prop.name, prop.major, prop.minor, count, arch, max_err, got_min, want_min);
  return ok ? 0 : 1;
}
