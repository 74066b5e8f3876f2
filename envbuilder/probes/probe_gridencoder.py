"""envbuilder's probe for the grid-encoder extension TalkingGaussian builds (module _gridencoder),
written for envbuilder: it only calls the extension's two entry points. For fixed inputs the encoding is linear in
the embeddings, y = A e. The probe rebuilds A column by column from forward passes and checks:
forward(e) == A e; backward(g) == A^T g (the backward kernel is the forward's adjoint); and, for
linear interpolation on a dense grid, every row of each level's A sums to 1. Prints one JSON line."""

import json
import math

import torch  # first: _gridencoder is a bare .so linked to libc10.so, which importing torch loads

# isort: split
import _gridencoder as backend

torch.manual_seed(0)
dev = torch.device("cuda")
B, D, C, L, H = 16, 2, 2, 2, 4  # batch, input dims, channels per level, levels, base resolution
scale = 1.5
offsets, total = [0], 0
for level in range(L):
    resolution = math.ceil(H * scale**level)
    total += int(math.ceil((resolution + 1) ** D / 8) * 8)
    offsets.append(total)
offsets = torch.tensor(offsets, dtype=torch.int32, device=dev)
inputs = torch.rand(B, D, device=dev)
S = math.log2(scale)


def forward(embeddings):
    out = torch.empty(L, B, C, device=dev)
    backend.grid_encode_forward(inputs, embeddings, offsets, out, B, D, C, L, S, H, None, 1, False, 0)
    return out.permute(1, 0, 2).reshape(B, L * C)


def backward(grad):
    grad_e = torch.zeros(total, C, device=dev)
    backend.grid_encode_backward(
        grad.view(B, L, C).permute(1, 0, 2).contiguous(),
        inputs,
        torch.zeros(total, C, device=dev),
        offsets,
        grad_e,
        B,
        D,
        C,
        L,
        S,
        H,
        None,
        None,
        1,
        False,
        0,
    )
    return grad_e


basis_outputs = []
for k in range(total * C):
    e = torch.zeros(total * C, device=dev)
    e[k] = 1.0
    basis_outputs.append(forward(e.view(total, C)).reshape(-1))
A = torch.stack(basis_outputs, 1)  # [B*L*C, total*C]
e = torch.randn(total, C, device=dev)
g = torch.randn(B, L * C, device=dev)
forward_error = (forward(e).reshape(-1) - A @ e.reshape(-1)).abs().max().item()
adjoint_error = (backward(g).reshape(-1) - A.T @ g.reshape(-1)).abs().max().item()
row_sums = A.view(B, L, C, total, C).sum(dim=(3, 4))
partition_error = (row_sums - 1).abs().max().item()
result = {
    "device": torch.cuda.get_device_name(0),
    "params": total * C,
    "forward_linear_error": forward_error,
    "backward_adjoint_error": adjoint_error,
    "partition_of_unity_error": partition_error,
}
result["ok"] = forward_error < 1e-4 and adjoint_error < 1e-4 and partition_error < 1e-4
print(json.dumps(result))
