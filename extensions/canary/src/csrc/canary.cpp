// Python bindings of the canary extension.
#include <torch/extension.h>

at::Tensor canary_axpb(const at::Tensor& x, double a, double b);
at::Tensor canary_min(const at::Tensor& x);
int64_t canary_running_arch(int64_t device);
int64_t canary_nvcc_version();

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("axpb", &canary_axpb, "y = a * x + b on the GPU", py::arg("x"), py::arg("a"), py::arg("b"));
  m.def("min", &canary_min, "minimum of a float32 CUDA tensor (CUB block reduction)", py::arg("x"));
  m.def("running_arch", &canary_running_arch, "__CUDA_ARCH__ of the code that runs on a device",
        py::arg("device") = 0);
  m.def("nvcc_version", &canary_nvcc_version, "CUDA version of the nvcc that compiled the kernels");
  m.attr("cplusplus") = static_cast<int64_t>(__cplusplus);
}
