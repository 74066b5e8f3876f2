"""Probe for simple-knn: distCUDA2 (mean squared distance to the 3 nearest neighbours) against a
brute-force torch reference. Prints one JSON line."""

import json

import torch
from simple_knn._C import distCUDA2

torch.manual_seed(0)
points = torch.rand(2000, 3, device="cuda")
got = distCUDA2(points)
d2 = torch.cdist(points, points).pow(2)
d2.fill_diagonal_(float("inf"))
want = d2.topk(3, largest=False).values.mean(1)
error = (got - want).abs().max().item()
result = {
    "device": torch.cuda.get_device_name(0),
    "points": 2000,
    "max_abs_error": error,
    "max_value": want.max().item(),
}
result["ok"] = bool(torch.isfinite(got).all()) and error < 1e-5
print(json.dumps(result))
