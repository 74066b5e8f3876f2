"""Probe for diff-gaussian-rasterization and its forks (graphdeco, ashawkey, ingra14m,
joungbinlee per-pixel background, Disco4D's 16-object variant): forward on random Gaussians in
front of a camera, then backward. The image must be finite and not the background, and the
gradients of positions, opacities and colours finite and non-zero. Prints one JSON line."""

import inspect
import json
import math

import torch
from diff_gaussian_rasterization import GaussianRasterizationSettings, GaussianRasterizer


def projection(znear, zfar, fovx, fovy):
    top, right = math.tan(fovy / 2) * znear, math.tan(fovx / 2) * znear
    p = torch.zeros(4, 4)
    p[0, 0], p[1, 1] = znear / right, znear / top
    p[3, 2], p[2, 2], p[2, 3] = 1.0, zfar / (zfar - znear), -(zfar * znear) / (zfar - znear)
    return p


def main():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    h = w = 64
    fov = math.radians(60)
    view = torch.eye(4, device=dev)  # camera at the origin looking down +z (COLMAP convention)
    proj = (view @ projection(0.01, 100.0, fov, fov).to(dev).T).contiguous()
    # The per-pixel-background fork reads bg[c*H*W + pixel]; the others read bg[c]: a white
    # [3, H, W] background is right for both.
    bg = torch.ones(3, h, w, device=dev)
    settings = GaussianRasterizationSettings(
        image_height=h,
        image_width=w,
        tanfovx=math.tan(fov / 2),
        tanfovy=math.tan(fov / 2),
        bg=bg,
        scale_modifier=1.0,
        viewmatrix=view.T.contiguous(),
        projmatrix=proj,
        sh_degree=0,
        campos=torch.zeros(3, device=dev),
        prefiltered=False,
        debug=False,
    )
    n = 256
    means = (torch.rand(n, 3, device=dev) - 0.5) * torch.tensor([2.0, 2.0, 1.0], device=dev) + torch.tensor(
        [0.0, 0.0, 3.0], device=dev
    )
    means.requires_grad_(True)
    screen = torch.zeros(n, 3, device=dev, requires_grad=True)
    opacity = torch.full((n, 1), 0.8, device=dev, requires_grad=True)
    colours = torch.rand(n, 3, device=dev, requires_grad=True)
    scales = torch.full((n, 3), 0.08, device=dev)
    rotations = torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=dev).repeat(n, 1)
    kwargs = dict(
        means3D=means, means2D=screen, opacities=opacity, colors_precomp=colours, scales=scales, rotations=rotations
    )
    if "sh_objs" in inspect.signature(GaussianRasterizer.forward).parameters:  # Disco4D: 16 object channels
        kwargs["sh_objs"] = torch.rand(n, 1, 16, device=dev)
    outputs = GaussianRasterizer(settings)(**kwargs)
    image = outputs[0]
    covered = (image - 1.0).abs().amax(0) > 1e-3
    loss = image.mean() + sum(
        o.float().mean() for o in outputs[2:] if torch.is_tensor(o) and o.is_floating_point() and o.requires_grad
    )
    loss.backward()
    grads = {"means3D": means.grad, "opacity": opacity.grad, "colors": colours.grad}
    result = {
        "device": torch.cuda.get_device_name(0),
        "outputs": len(outputs),
        "image_shape": list(image.shape),
        "finite": bool(torch.isfinite(image).all()),
        "covered_pixels": int(covered.sum()),
        "radii_positive": int((outputs[1] > 0).sum()),
        "grads_finite": all(bool(torch.isfinite(g).all()) for g in grads.values()),
        "grads_nonzero": {k: bool(g.abs().sum() > 0) for k, g in grads.items()},
    }
    result["ok"] = (
        result["finite"]
        and result["covered_pixels"] > 50
        and result["grads_finite"]
        and all(result["grads_nonzero"].values())
    )
    print(json.dumps(result))


main()
