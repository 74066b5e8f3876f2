// Torch launchers for the canary kernels.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "canary_kernels.cuh"

namespace {
constexpr int kThreads = 256;

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), "canary: expected a CUDA tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "canary: expected float32");
}
}  // namespace

at::Tensor canary_axpb(const at::Tensor& x_in, double a, double b) {
  check_input(x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return y;
  const int blocks = static_cast<int>((n + kThreads - 1) / kThreads);
  canary::axpb_kernel<<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      x.data_ptr<float>(), y.data_ptr<float>(), static_cast<float>(a), static_cast<float>(b), n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

at::Tensor canary_min(const at::Tensor& x_in) {
  check_input(x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor x = x_in.contiguous();
  const int64_t n = x.numel();
  TORCH_CHECK(n > 0, "canary: min of an empty tensor");
  const int blocks = static_cast<int>((n + kThreads - 1) / kThreads);
  at::Tensor partial = at::empty({blocks}, x.options());
  canary::block_min_kernel<<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      x.data_ptr<float>(), partial.data_ptr<float>(), n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return partial.min();
}

int64_t canary_running_arch(int64_t device) {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  at::Tensor out = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(at::kCUDA, device));
  canary::arch_kernel<<<1, 1, 0, c10::cuda::getCurrentCUDAStream()>>>(out.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.item<int32_t>();
}

int64_t canary_nvcc_version() { return __CUDACC_VER_MAJOR__ * 1000 + __CUDACC_VER_MINOR__ * 10; }
