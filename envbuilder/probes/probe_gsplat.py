"""Probe for gsplat (CUDA build): rasterize random Gaussians in front of a camera and backprop.
The image must be finite and not empty, and the gradients finite and non-zero. Prints one JSON line."""

import json

import torch
from gsplat.rendering import rasterization

torch.manual_seed(0)
dev = torch.device("cuda")
n = 512
means = (
    (torch.rand(n, 3, device=dev) - 0.5) * torch.tensor([2.0, 2.0, 1.0], device=dev)
    + torch.tensor([0.0, 0.0, 3.0], device=dev)
).requires_grad_(True)
quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=dev).repeat(n, 1)
scales = torch.full((n, 3), 0.06, device=dev)
opacities = torch.full((n,), 0.8, device=dev, requires_grad=True)
colors = torch.rand(n, 3, device=dev, requires_grad=True)
viewmats = torch.eye(4, device=dev)[None]
K = torch.tensor([[[80.0, 0.0, 32.0], [0.0, 80.0, 32.0], [0.0, 0.0, 1.0]]], device=dev)
image, alpha, _ = rasterization(means, quats, scales, opacities, colors, viewmats, K, 64, 64)
image.sum().backward()
result = {
    "device": torch.cuda.get_device_name(0),
    "image_shape": list(image.shape),
    "finite": bool(torch.isfinite(image).all()),
    "covered_pixels": int((alpha[0, ..., 0] > 1e-3).sum()),
    "grads_nonzero": {"means": bool(means.grad.abs().sum() > 0), "opacities": bool(opacities.grad.abs().sum() > 0)},
}
result["ok"] = result["finite"] and result["covered_pixels"] > 50 and all(result["grads_nonzero"].values())
print(json.dumps(result))
