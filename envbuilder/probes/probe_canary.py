"""Probe for the canary extension, run with the env's Python: the kernels against torch.

Standalone on purpose (imports only torch and the extension); prints one JSON line.
"""

import json
import sys

import torch  # first, as for every probe: a torch extension needs torch's libraries loaded

# isort: split
import envbuilder_canary as canary

result = {"module": canary.__file__, "nvcc_version": canary.nvcc_version(), "cplusplus": canary.cplusplus}
if not torch.cuda.is_available():
    result.update(ok=False, error="torch sees no CUDA device")
    print(json.dumps(result))
    sys.exit(0)

device = torch.device("cuda", 0)
torch.manual_seed(0)
x = torch.randn(1 << 20, device=device)
y = canary.axpb(x, 2.5, -1.0)
reference = 2.5 * x - 1.0
max_error = (y - reference).abs().max().item()
got_min, want_min = canary.min(x).item(), x.min().item()
running = canary.running_arch(0)
major, minor = torch.cuda.get_device_capability(0)
result.update(
    device=torch.cuda.get_device_name(0),
    compute_capability=f"{major}.{minor}",
    running_arch=running,
    axpb_max_error=max_error,
    min=got_min,
    min_expected=want_min,
    torch=torch.__version__,
)
result["ok"] = bool(
    torch.allclose(y, reference, rtol=1e-6, atol=1e-6) and got_min == want_min and running // 100 == major
)
print(json.dumps(result))
