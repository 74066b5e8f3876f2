"""Probe for PyTorch3D (CUDA build): knn_points on the GPU against a brute-force torch reference.
Prints one JSON line."""

import json

import torch
from pytorch3d.ops import knn_points

torch.manual_seed(0)
p1 = torch.rand(2, 500, 3, device="cuda")
p2 = torch.rand(2, 700, 3, device="cuda")
got = knn_points(p1, p2, K=4).dists
want = torch.cdist(p1, p2).pow(2).topk(4, largest=False).values
error = (got - want).abs().max().item()
result = {"device": torch.cuda.get_device_name(0), "max_abs_error": error}
result["ok"] = bool(torch.isfinite(got).all()) and error < 1e-5
print(json.dumps(result))
