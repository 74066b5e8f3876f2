"""Probe for kaolin (CUDA build): chamfer distance on the GPU against a brute-force torch
reference. Prints one JSON line."""

import json

import torch
from kaolin.metrics.pointcloud import sided_distance

torch.manual_seed(0)
p1 = torch.rand(2, 400, 3, device="cuda")
p2 = torch.rand(2, 600, 3, device="cuda")
got, _ = sided_distance(p1, p2)
want = torch.cdist(p1, p2).pow(2).min(-1).values
error = (got - want).abs().max().item()
result = {"device": torch.cuda.get_device_name(0), "max_abs_error": error}
result["ok"] = bool(torch.isfinite(got).all()) and error < 1e-5
print(json.dumps(result))
